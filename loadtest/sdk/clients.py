"""Drives the edge with the official client SDKs and prints what each call observed.

Usage: clients.py openai|anthropic|mcp

Reads EDGE (the node's base URL) and the tokens it needs from the environment; prints one
JSON object per line: {"check": name, ...observations}. It judges nothing itself: the Rust
end-to-end test (loadtest/tests/e2e_sdks.rs) asserts on what it prints.
"""

import asyncio
import json
import os
import sys


def emit(check, **fields):
    print(json.dumps({"check": check, **fields}), flush=True)


def error_fields(e):
    return {"error_type": type(e).__name__, "status": getattr(e, "status_code", None), "message": str(e)}


def run_openai():
    import openai

    edge = os.environ["EDGE"]
    allowed = openai.OpenAI(base_url=f"{edge}/openai/v1", api_key=os.environ["SALES_TOKEN"], max_retries=0)
    engineer = openai.OpenAI(base_url=f"{edge}/openai/v1", api_key=os.environ["ENGINEER_TOKEN"], max_retries=0)
    denied = openai.OpenAI(base_url=f"{edge}/openai/v1", api_key=os.environ["DENIED_TOKEN"], max_retries=0)

    chat = allowed.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    emit("chat", text=chat.choices[0].message.content, model=chat.model)

    chunks = []
    with allowed.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=True
    ) as stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                chunks.append(chunk.choices[0].delta.content)
    emit("chat_stream", chunks=len(chunks), text="".join(chunks))

    response = engineer.responses.create(model="gpt-4o", input="hello")
    emit("responses", text=response.output_text, model=response.model)

    embedding = engineer.embeddings.create(model="text-embedding-3-small", input="hello")
    emit("embeddings", dimensions=len(embedding.data[0].embedding))

    # An API key the control plane issued works as the SDK's key.
    keyed = openai.OpenAI(base_url=f"{edge}/openai/v1", api_key=os.environ["API_KEY"], max_retries=0)
    chat = keyed.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    emit("api_key_chat", text=chat.choices[0].message.content)

    try:
        denied.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
        emit("chat_denied", error_type=None)
    except openai.APIStatusError as e:
        emit("chat_denied", **error_fields(e), permission=isinstance(e, openai.PermissionDeniedError))

    # Azure OpenAI: the deployment in the path is the model, the key travels as `api-key`.
    def azure(token):
        return openai.AzureOpenAI(
            azure_endpoint=f"{edge}/azure", api_key=token, api_version="2024-10-21", max_retries=0
        )

    chat = azure(os.environ["SALES_TOKEN"]).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
    )
    emit("azure_chat", text=chat.choices[0].message.content)
    try:
        azure(os.environ["DENIED_TOKEN"]).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        emit("azure_denied", error_type=None)
    except openai.APIStatusError as e:
        emit("azure_denied", **error_fields(e), permission=isinstance(e, openai.PermissionDeniedError))


def run_anthropic():
    import anthropic

    edge = os.environ["EDGE"]
    allowed = anthropic.Anthropic(base_url=f"{edge}/anthropic", api_key=os.environ["LEGAL_TOKEN"], max_retries=0)
    denied = anthropic.Anthropic(base_url=f"{edge}/anthropic", api_key=os.environ["DENIED_TOKEN"], max_retries=0)

    message = allowed.messages.create(
        model="claude-sonnet-4", max_tokens=32, messages=[{"role": "user", "content": "hello"}]
    )
    emit("messages", text=message.content[0].text, model=message.model)

    with allowed.messages.stream(
        model="claude-sonnet-4", max_tokens=32, messages=[{"role": "user", "content": "hello"}]
    ) as stream:
        pieces = [text for text in stream.text_stream]
    emit("messages_stream", chunks=len(pieces), text="".join(pieces))

    try:
        denied.messages.create(model="claude-sonnet-4", max_tokens=32, messages=[{"role": "user", "content": "hello"}])
        emit("messages_denied", error_type=None)
    except anthropic.APIStatusError as e:
        emit("messages_denied", **error_fields(e), permission=isinstance(e, anthropic.PermissionDeniedError))


async def run_mcp():
    import httpx2
    from mcp import ClientSession, MCPError
    from mcp.client.streamable_http import streamable_http_client

    edge = os.environ["EDGE"]
    headers = {"authorization": f"Bearer {os.environ['SALES_TOKEN']}"}
    async with httpx2.AsyncClient(headers=headers, timeout=10) as http:
        async with streamable_http_client(f"{edge}/mcp/crm", http_client=http) as (read, write, *_):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                emit("initialize", server=init.server_info.name, protocol=init.protocol_version)
                tools = await session.list_tools()
                emit("list_tools", tools=sorted(t.name for t in tools.tools))
                result = await session.call_tool("update_opportunity", {"id": "42", "stage": "won"})
                emit("call_allowed", is_error=result.is_error, text=result.content[0].text)
                try:
                    result = await session.call_tool("export_all_contacts", {})
                    emit("call_denied", error_type=None, is_error=result.is_error)
                except MCPError as e:
                    emit("call_denied", error_type=type(e).__name__, code=e.error.code, message=e.error.message)
                contents = await session.read_resource("crm://pipeline/summary")
                emit("read_resource", text=contents.contents[0].text)


def main():
    which = sys.argv[1]
    if which == "openai":
        run_openai()
    elif which == "anthropic":
        run_anthropic()
    elif which == "mcp":
        asyncio.run(run_mcp())
    else:
        sys.exit(f"unknown client {which}")


if __name__ == "__main__":
    main()
