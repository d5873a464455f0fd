//! Generates the gRPC snapshot API with a vendored `protoc`: the build needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    // Frames are sent to many nodes: share one buffer instead of copying it per stream.
    config.bytes([
        ".portcullis.v1.Snapshot.payload",
        ".portcullis.v1.Snapshot.signature",
        ".portcullis.v1.Delta.payload",
        ".portcullis.v1.Delta.signature",
        // Handed to the decision store's task without a copy.
        ".portcullis.v1.Records.jsonl",
    ]);
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &["proto/portcullis/v1/snapshot.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
