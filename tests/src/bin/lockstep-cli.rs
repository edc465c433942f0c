//! The `lockstep` command line, built as part of the test package so integration tests can
//! run it as a real process (cargo builds a package's binaries before its tests).

fn main() -> std::process::ExitCode {
    lockstep::cli::main()
}
