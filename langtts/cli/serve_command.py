"""``langtts setup`` and ``langtts serve``: the embedded llama.cpp server and the vLLM launcher."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from langtts.cli.common import add_command, arguments
from langtts.serve.embedded import DEFAULT_CTX_PER_SLOT

EMBEDDED_HELP = "smollm2-135m, gemma3-270m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b"


def register(commands: argparse._SubParsersAction) -> None:
    setup = add_command(commands, "setup", run_setup)
    setup.add_argument("--models", help=f"comma-separated model ids (default: all: {EMBEDDED_HELP})")
    setup.add_argument("--verify", action="store_true", help="re-hash weights that are already cached")

    serve = add_command(commands, "serve", run_serve)
    serve.add_argument("--engine", choices=("embedded", "vllm"), default="embedded")
    serve.add_argument("--models", help=f"embedded: comma-separated model ids (default: all: {EMBEDDED_HELP})")
    serve.add_argument("--port", type=int, help="embedded: port (default: a free one)")
    serve.add_argument(
        "--ctx-per-slot", type=int, default=DEFAULT_CTX_PER_SLOT,
        help=f"embedded: context tokens per request (default {DEFAULT_CTX_PER_SLOT})",
    )  # fmt: skip
    serve.add_argument("--parallel", type=int, default=2, help="embedded: parallel slots per model")
    serve.add_argument("--threads", type=int, default=1, help="embedded: CPU threads per model (default: 1)")
    serve.add_argument("--detach", action="store_true", help="embedded: start in the background and return")
    serve.add_argument("--stop", action="store_true", help="stop the embedded server that is running")
    serve.add_argument("--status", action="store_true", help="show the embedded server that is running")
    serve.add_argument(
        "--run-dir", help="embedded: directory of the server's state, pool file and log (default: the cache's run/)"
    )
    serve.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ID=PATH_OR_NAME",
        help="vllm: a model to serve (repeatable): pool id = local directory or hub name",
    )
    serve.add_argument("--vllm-python", default=sys.executable, help="vllm: the interpreter that has vLLM")
    serve.add_argument("--gpus", help="vllm: comma-separated GPU indices (default: all visible; '' = CPU build)")
    serve.add_argument("--tensor-parallel", type=int, default=1, help="vllm: GPUs per server (tensor parallel)")
    serve.add_argument("--data-parallel", type=int, default=1, help="vllm: data-parallel ranks per server")
    serve.add_argument("--replicas", type=int, default=1, help="vllm: servers per model (pool endpoints)")
    serve.add_argument("--host", default="127.0.0.1", help="vllm: address to bind (0.0.0.0: all interfaces)")
    serve.add_argument("--advertise", help="vllm: host name in the pool file (default: --host, or this machine's)")
    serve.add_argument("--base-port", type=int, default=8100, help="vllm: port of the first model")
    serve.add_argument("--max-model-len", type=int, default=4096, help="vllm: context length")


def _ids(text: str | None) -> list[str] | None:
    return [m.strip() for m in text.split(",") if m.strip()] if text else None


def run_setup(args: argparse.Namespace) -> int:
    """build llama-server and fetch the verified embedded weights into the user cache

    Build llama.cpp's llama-server (once, minutes) and fetch, assemble and sha256-verify the embedded model weights
    into the user cache ($LANGTTS_CACHE_DIR, else the platform's user cache, ~/.cache/langtts on Linux)."""
    from langtts.serve.setup import WEIGHTS, setup_models

    ids = _ids(args.models) or list(WEIGHTS)
    unknown = [i for i in ids if i not in WEIGHTS]
    if unknown:
        raise ValueError(f"unknown model id(s) {unknown}; known: {sorted(WEIGHTS)}")
    paths = setup_models(ids, verify=args.verify, progress=_say)
    for model_id, path in paths.items():
        print(f"{model_id}\t{path}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """start the embedded llama.cpp server (default) or vLLM servers and write their pool file

    Start llama-server in router mode with the embedded models on 127.0.0.1 (setting them up on first use), print
    the base URL and write a pool file; stop with Ctrl-C or `langtts serve --stop`. With --engine vllm, start one
    vLLM OpenAI server per --model instead."""
    if args.engine == "vllm":
        return _serve_vllm(args)
    from langtts.serve.embedded import DEFAULT_MODELS, EmbeddedServer, running_server, stop_server

    if args.stop:
        stopped = stop_server(args.run_dir)
        print("stopped the embedded server" if stopped else "no embedded server was running")
        return 0
    if args.status:
        info = running_server(args.run_dir)
        if info is None:
            print("no embedded server is running")
            return 1
        print(info.describe())
        return 0
    server = EmbeddedServer(
        _ids(args.models) or DEFAULT_MODELS,
        port=args.port,
        ctx_per_slot=args.ctx_per_slot,
        parallel=args.parallel,
        threads=args.threads,
        run_dir=args.run_dir,
        progress=_say,
    )
    if args.detach:
        server.start()
        return 0
    server.serve_forever()
    return 0


def _serve_vllm(args: argparse.Namespace) -> int:
    from langtts.serve.vllm import start_vllm, stop_vllm

    if not args.model:
        raise ValueError("--engine vllm needs at least one --model ID=PATH_OR_NAME")
    if min(args.replicas, args.tensor_parallel, args.data_parallel) < 1:
        raise ValueError("--replicas, --tensor-parallel and --data-parallel must be at least 1")
    models = {}
    for item in args.model:
        model_id, sep, source = item.partition("=")
        if not sep or not model_id or not source:
            raise ValueError(f"--model {item!r}: expected ID=PATH_OR_NAME")
        models[model_id] = source
    gpus = None if args.gpus is None else [int(g) for g in args.gpus.split(",") if g.strip()]
    servers, pool_file = start_vllm(
        models,
        python=args.vllm_python,
        gpus=gpus,
        **arguments(
            args, "tensor_parallel", "data_parallel", "replicas", "host", "advertise", "base_port", "max_model_len"
        ),
    )
    for server in servers:
        print(f"{server.model_id}: {server.base_url} (pid {server.pid}, log {server.log_file})")
    print(f"pool file: {pool_file}  (use --pool {pool_file} or LANGTTS_POOL={pool_file})")
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        _say("stopping the vLLM servers")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop_vllm(servers)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
