//! The `stockroom` binary: parse the configuration, then serve, print the schema, or mint a
//! token.

use std::process::ExitCode;

use clap::Parser;
use stockroom::config::{Cli, Command};
use stockroom::startup::Application;
use stockroom::{auth, graphql, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Schema => {
            print!("{}", graphql::sdl());
            ExitCode::SUCCESS
        }
        Command::Token { role, subject, ttl } => {
            match auth::mint(&cli.config.auth(), role, &subject, ttl) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("stockroom token: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve => {
            telemetry::init(cli.config.log_format, "info", std::io::stdout);
            match serve(&cli.config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!("{error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: &stockroom::config::Config) -> Result<(), Box<dyn std::error::Error>> {
    let application = Application::build(config).await?;
    tracing::info!(
        address = %application.local_addr()?,
        "stockroom is listening: GraphQL and GraphiQL at /graphql"
    );
    application.run_until_stopped().await?;
    Ok(())
}
