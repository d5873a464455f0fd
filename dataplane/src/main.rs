//! `portcullis-dp`: the data-plane binary.

fn main() -> std::process::ExitCode {
    portcullis_dataplane::cli::main()
}
