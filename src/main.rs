//! The `stockroom` binary: parse the configuration, then serve or run a subcommand.

use std::process::ExitCode;

use clap::Parser;
use stockroom::config::{Cli, Command, Config};
use stockroom::startup::Application;
use stockroom::{cli, remote, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command, config } = Cli::parse();
    match command.unwrap_or(Command::Serve) {
        Command::Schema => cli::schema(),
        Command::Token { role, subject, ttl } => cli::token(&config, role, &subject, ttl),
        Command::Verify { as_of } => cli::verify(&config, as_of).await,
        Command::Import {
            file,
            remote,
            dry_run,
            error_policy,
            source,
            report,
        } => {
            let options = remote::ImportArguments {
                dry_run,
                error_policy,
                source,
                report,
            };
            remote::import(&remote, &file, &options).await
        }
        Command::Export {
            what,
            remote,
            output,
            from,
            to,
        } => remote::export(&remote, what, output.as_deref(), from, to).await,
        Command::Serve => {
            telemetry::init(config.log_format, "info", std::io::stdout);
            match serve(&config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let application = Application::build(config).await?;
    tracing::info!(
        address = %application.local_addr()?,
        "stockroom is listening: GraphQL and GraphiQL at /graphql"
    );
    application.run_until_stopped().await?;
    Ok(())
}
