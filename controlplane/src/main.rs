//! `portcullis-cp`: the control plane binary.

fn main() -> std::process::ExitCode {
    portcullis_controlplane::cli::main()
}
