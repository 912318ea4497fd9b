use std::process::ExitCode;

fn main() -> ExitCode {
    zoo::cli::main()
}
