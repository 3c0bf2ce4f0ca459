"""The comparator for bench/core.py: the smallest Litestar app, served by uvicorn.

Run as `python bench/hello_app.py PORT`; it answers GET /health with {"status": "ok"} on
127.0.0.1:PORT. It is what Lumiku's start-up time and memory are measured against.
"""

from __future__ import annotations

import sys

import uvicorn
from litestar import Litestar, get


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[health])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
