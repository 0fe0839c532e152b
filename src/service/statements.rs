//! The writes of one save, sent in as few round trips as the database allows.
//!
//! A stock change writes several rows: the product, each bucket it touched, the movement and
//! its allocations. Sent one by one, each is a round trip while the product's row lock is held,
//! and the lock sets the pace of every writer of that product. On PostgreSQL they go as one
//! statement instead: every write but the last becomes a data-modifying `WITH` clause of the
//! last (`WITH w0 AS (UPDATE ...), w1 AS (INSERT ...) INSERT ...`), which PostgreSQL runs in
//! full, as one statement with one snapshot. That is sound here because no write reads
//! another's rows: each touches different rows, and the foreign keys between them (an
//! allocation's movement and bucket) are checked at the end of the statement. SQLite has no
//! data-modifying `WITH`, and its statements cost no round trip: there they run one by one.

use sea_orm::sea_query::{CommonTableExpression, SubQueryStatement, WithClause};
use sea_orm::{ConnectionTrait, DbBackend};

use crate::error::Result;

/// Most bind parameters one combined statement carries: well under PostgreSQL's 65,535, so an
/// estimate a little short never reaches the limit.
const MAX_COMBINED_BINDS: usize = 30_000;

/// One write and how many values it binds (an upper bound).
struct Write {
    statement: SubQueryStatement,
    binds: usize,
}

/// The writes of one save, in the order they were added.
#[derive(Default)]
pub(super) struct Writes {
    writes: Vec<Write>,
}

impl Writes {
    /// Adds a write binding at most `binds` values.
    pub(super) fn push(&mut self, statement: impl Into<SubQueryStatement>, binds: usize) {
        self.writes.push(Write {
            statement: statement.into(),
            binds,
        });
    }

    /// Runs every write inside `transaction`: on PostgreSQL as few combined statements as the
    /// bind limit allows (usually one), on SQLite one by one.
    pub(super) async fn execute(self, transaction: &impl ConnectionTrait) -> Result<()> {
        let backend = transaction.get_database_backend();
        if backend != DbBackend::Postgres {
            for write in self.writes {
                execute_one(transaction, write.statement).await?;
            }
            return Ok(());
        }
        let mut group: Vec<SubQueryStatement> = Vec::new();
        let mut group_binds = 0;
        for write in self.writes {
            if !group.is_empty() && group_binds + write.binds > MAX_COMBINED_BINDS {
                execute_combined(transaction, std::mem::take(&mut group)).await?;
                group_binds = 0;
            }
            group_binds += write.binds;
            group.push(write.statement);
        }
        if !group.is_empty() {
            execute_combined(transaction, group).await?;
        }
        Ok(())
    }
}

/// Runs `statements` as one: all but the last as `WITH` clauses of the last.
async fn execute_combined(
    transaction: &impl ConnectionTrait,
    mut statements: Vec<SubQueryStatement>,
) -> Result<()> {
    let Some(last) = statements.pop() else {
        return Ok(());
    };
    if statements.is_empty() {
        return execute_one(transaction, last).await;
    }
    let mut with = WithClause::new();
    for (position, statement) in statements.into_iter().enumerate() {
        with.cte(
            CommonTableExpression::new()
                .query(statement)
                .table_name(format!("w{position}"))
                .to_owned(),
        );
    }
    transaction.execute(&with.query(last)).await?;
    Ok(())
}

async fn execute_one(
    transaction: &impl ConnectionTrait,
    statement: SubQueryStatement,
) -> Result<()> {
    match statement {
        SubQueryStatement::SelectStatement(statement) => transaction.execute(&statement).await?,
        SubQueryStatement::InsertStatement(statement) => transaction.execute(&statement).await?,
        SubQueryStatement::UpdateStatement(statement) => transaction.execute(&statement).await?,
        SubQueryStatement::DeleteStatement(statement) => transaction.execute(&statement).await?,
        SubQueryStatement::WithStatement(statement) => transaction.execute(&statement).await?,
    };
    Ok(())
}
