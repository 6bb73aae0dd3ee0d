"""REST transport: TF Serving API v1 and KServe V2 over ASGI (uvicorn)."""
