#!/usr/bin/env bash
# build_dist.sh [OUT_DIR]: build what cluster.yaml ships to every node (file_mounts /home/ray/dist <- ./dist),
# so that the head and every worker run the same code with the same dependency versions:
#   avspot-<version>-py3-none-any.whl  the project, built from the files git does not ignore (tracked or
#                                      new), copied to a temporary folder: the checkout is not touched
#   constraints.txt                    every package of the virtualenv pinned (pip freeze): the nodes run
#                                      `pip install --constraint constraints.txt avspot-*.whl`, so pip
#                                      installs what the wheel requires, each at the version tested here,
#                                      and nothing else. Local version labels are dropped (torch==2.13.0+cpu
#                                      -> torch==2.13.0): the nodes get PyPI's CUDA build of the same
#                                      release. torch stays pinned because the rayproject/ray image ships
#                                      no torch; drop packages an image provides with
#                                      AVSPOT_CONSTRAINTS_DROP="torch torchvision". avspot itself and
#                                      editable installs are left out; server-constraints.txt adds the
#                                      MLflow server image's extras.
#   cluster/                           the node-side scripts (node_env.sh, check_gpu.sh, check_image.sh,
#                                      registry_login.sh, wait_mlflow.sh, mlflow_server.sh); build_images.sh
#                                      builds the node images with this folder as their context
#   BUILD_ID, BUILD_INFO, SHA256SUMS   the build's identity (sha256 of wheel + constraints), where it came
#                                      from, and the checksums the nodes verify before installing
# OUT_DIR defaults to dist/ in the repository; PYTHON defaults to .venv/bin/python. Build on Linux x86_64
# with CPython 3.11, like the image, so that the pins are the ones the nodes can install.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/scripts/cluster
python=${PYTHON:-$root/.venv/bin/python}
out=${1:-$root/dist}
[[ -x $python ]] || { echo "build_dist.sh: no interpreter at $python (make install, or PYTHON=...)" >&2; exit 1; }

platform=$("$python" -c 'import platform, sys; print(f"{sys.platform}-{platform.machine()}-{sys.version_info[0]}.{sys.version_info[1]}")')
if [[ $platform != linux-x86_64-3.11 ]]; then
  echo "build_dist.sh: warning: building on $platform; the nodes are linux-x86_64-3.11 and may not find these pins" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/src" "$tmp/wheel" "$out"

# The source: what git would ship (tracked and untracked-but-not-ignored files that exist), else the
# folder minus the usual build, data and environment folders.
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$root" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -C "$tmp/src" -xf -
  commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo none)
  dirty=$([[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]] && echo yes || echo no)
else
  tar -C "$root" --exclude=./.git --exclude=./.venv --exclude=./dist --exclude=./build \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=./data --exclude='*.db' -cf - . |
    tar -C "$tmp/src" -xf -
  commit=none
  dirty=unknown
fi

if ! "$python" -m pip wheel --no-deps --wheel-dir "$tmp/wheel" "$tmp/src" >"$tmp/wheel.log" 2>&1; then
  cat "$tmp/wheel.log" >&2
  echo "build_dist.sh: building the wheel failed" >&2
  exit 1
fi
shopt -s nullglob
wheels=("$tmp"/wheel/avspot-*.whl)
[[ ${#wheels[@]} -eq 1 ]] || { echo "build_dist.sh: expected one avspot wheel, got ${#wheels[@]}" >&2; exit 1; }

# One wheel in OUT_DIR: the nodes install avspot-*.whl.
rm -rf "$out"/avspot-*.whl "$out/cluster" "$out/constraints.txt" "$out/BUILD_ID" "$out/BUILD_INFO" "$out/SHA256SUMS"
cp "${wheels[0]}" "$out/"
wheel_name=$(basename "${wheels[0]}")

"$python" -m pip freeze --exclude-editable >"$tmp/freeze.txt"
"$python" - "$tmp/freeze.txt" "$here/server-constraints.txt" "${AVSPOT_CONSTRAINTS_DROP:-}" \
  "$python" >"$out/constraints.txt" <<'PY'
import re
import sys

freeze, extra, drop, python = sys.argv[1:5]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


dropped = {norm(n) for n in drop.split()} | {"avspot"}
pins: dict[str, str] = {}
for source in (freeze, extra):
    for raw in open(source, encoding="utf-8"):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        if " @ " in line or "==" not in line:
            print(f"build_dist.sh: skipping unpinnable requirement {line!r}", file=sys.stderr)
            continue
        name, version = (part.strip() for part in line.split("==", 1))
        version = version.split("+", 1)[0]  # local label: torch 2.13.0+cpu -> PyPI's 2.13.0
        key = norm(name)
        if key in dropped or key in pins:  # .venv's pin wins over server-constraints.txt
            continue
        pins[key] = f"{name}=={version}"
print(f"# Generated by scripts/cluster/build_dist.sh from {python} (pip freeze); do not edit.")
print("# Installed on every node with: pip install --constraint constraints.txt avspot-*.whl")
for key in sorted(pins):
    print(pins[key])
PY

mkdir -p "$out/cluster"
for f in node_env.sh check_gpu.sh check_image.sh registry_login.sh node_cache_disk.sh wait_mlflow.sh mlflow_server.sh; do
  cp "$here/$f" "$out/cluster/$f"
done

"$python" - "$out" "$wheel_name" "$commit" "$dirty" "$platform" <<'PY'
import datetime
import hashlib
import pathlib
import sys

out, wheel, commit, dirty, platform = sys.argv[1:6]
out = pathlib.Path(out)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


build_id = hashlib.sha256(
    (sha256(out / wheel) + sha256(out / "constraints.txt")).encode()
).hexdigest()[:16]
(out / "BUILD_ID").write_text(build_id + "\n")
(out / "BUILD_INFO").write_text(
    f"build_id={build_id}\nwheel={wheel}\ngit_commit={commit}\ngit_dirty={dirty}\n"
    f"built_on={platform}\n"
    f"built_at={datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}\n"
)
files = [wheel, "constraints.txt", "BUILD_ID", "BUILD_INFO"]
files += sorted(str(p.relative_to(out)) for p in (out / "cluster").iterdir())
(out / "SHA256SUMS").write_text("".join(f"{sha256(out / f)}  {f}\n" for f in files))
PY

echo "build_dist.sh: $out/$wheel_name, $(grep -c '==' "$out/constraints.txt") pins, build $(cat "$out/BUILD_ID") (commit ${commit:0:12}, dirty: $dirty)"
