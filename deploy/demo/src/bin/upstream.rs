//! `portcullis-demo-upstream`: the demo OpenAI/Anthropic-shaped API and MCP server.

fn main() -> std::process::ExitCode {
    portcullis_demo::upstream::main_from(std::env::args_os())
}
