//! `portcullis-quickstart`: control plane, one edge node, demo upstreams and identities on
//! this machine, with ready-to-paste curl commands. See `portcullis_demo::quickstart`.

fn main() -> std::process::ExitCode {
    portcullis_demo::quickstart::main()
}
