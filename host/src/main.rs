//! The `lockstep` binary: every subcommand of the host in one executable.

fn main() -> std::process::ExitCode {
    lockstep::cli::main()
}
