"""Call an MCP server as MKA1's runtime does, with the official MCP Python SDK (`mcp`).

Run by tests/it/mcp_python.rs as
`python mcp_client.py <mka1_server_url> <api_key> <mcp_url> <end_user>`.
The official MKA1 SDK (meetkai-mka1) exchanges the API key for a token whose audience is the
MCP server's URL and whose subject is the end user; the MCP client sends it as a static
`Authorization` header over Streamable HTTP, lists the tools and calls each. Prints one
JSON object on stdout for the Rust side to check.
"""

import asyncio
import json
import sys

import httpx
import httpx2
from meetkai_mka1 import SDK
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

server_url, api_key, mcp_url, end_user = sys.argv[1:5]


def exchange(permissions):
    client = httpx.Client(trust_env=False)
    sdk = SDK(server_url=server_url, bearer_auth=api_key, client=client)
    return sdk.auth.api_keys.exchange_token(
        audience=mcp_url,
        external_user_id=end_user,
        expires_in=600,
        permissions=permissions,
    ).token


def text(result):
    return {"is_error": bool(result.is_error), "text": result.content[0].text}


async def session(token):
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, trust_env=False) as http:
        async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            calls = {name: text(await client.call_tool(name, {})) for name in tools}
            return {"tools": tools, "calls": calls}


async def refused():
    """No token at all: the MCP client must fail to connect (the server answers 401)."""
    try:
        async with httpx2.AsyncClient(trust_env=False) as http:
            async with Client(streamable_http_client(mcp_url, http_client=http)) as client:
                await client.list_tools()
    except BaseException as e:  # noqa: BLE001 - report whatever the SDK raised
        return type(e).__name__ + ": " + str(e)[:200]
    return None


async def main():
    out = {
        "reader": await session(exchange(["agent:read"])),
        "no_read": await session(exchange([])),
        "anonymous_error": await refused(),
    }
    print(json.dumps(out))


asyncio.run(main())
