"""A real local HTTP server speaking the chat-completions protocol: the fake of an EXTERNAL service
(an OpenAI-compatible endpoint) that the LLM planner tests and the chat tests talk to."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeLLM:
    """Answers POST /v1/chat/completions with queued (status, body) replies and records each request."""

    def __init__(self):
        self.replies: list[tuple[int, bytes]] = []
        self.requests: list[dict] = []
        self.on_request = None  # called with the request body before answering: what happens "while the model thinks"
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                fake.requests.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                if fake.on_request:
                    fake.on_request(fake.requests[-1]["json"])
                status, payload = fake.replies.pop(0) if fake.replies else (500, b"no reply queued")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reply_tools(self, *calls: tuple[str, dict | str], content: str | None = None) -> None:
        tool_calls = [{"id": f"call_{i}", "type": "function",
                       "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
                      for i, (name, args) in enumerate(calls)]
        message = {"role": "assistant", "content": content, "tool_calls": tool_calls}
        self.replies.append((200, json.dumps({"id": "x", "object": "chat.completion", "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls"}]}).encode()))

    def reply_text(self, text: str) -> None:
        self.replies.append((200, json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                           "finish_reason": "stop"}]}).encode()))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
