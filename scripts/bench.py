#!/usr/bin/env python3
"""Peer benchmark: vault against restic, rustic and borg on the same data, in one run,
interleaved step by step. Prints vault's ratio to the best peer for every step.

Run through scripts/bench (which installs the peers); see docs/benchmarks.md.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORK = os.environ.get("VAULT_BENCH_DIR", "/tmp/vault-bench")
SCALE = os.environ.get("VAULT_BENCH_SCALE", "full")  # full | quick | tiny (a smoke test)
PASSWORD = "bench-password"
VAULT = os.path.join(ROOT, "target/release/vault")

SIZES = {
    "full": {"small_files": 100_000, "large_files": 3, "large_mib": 256, "random_mib": 2048, "history_versions": 6, "prune_gen_mib": 256},
    "quick": {"small_files": 20_000, "large_files": 3, "large_mib": 64, "random_mib": 512, "history_versions": 4, "prune_gen_mib": 64},
    "tiny": {"small_files": 2_000, "large_files": 3, "large_mib": 8, "random_mib": 64, "history_versions": 2, "prune_gen_mib": 8},
}[SCALE]


def sh(cmd, env=None, cwd=None, check=True):
    """Runs a command under /usr/bin/time; returns (seconds, peak RSS in KiB)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    t = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=full_env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    took = time.monotonic() - t
    lines = r.stderr.strip().splitlines()
    rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    if check and r.returncode not in (0, 3):
        raise RuntimeError(f"{cmd} failed ({r.returncode}): {r.stderr[-800:]}")
    return took, rss


def dir_bytes(path):
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- workloads (deterministic)

def gen_small(d):
    rnd = random.Random(1)
    words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 10))) for _ in range(3000)]
    for i in range(SIZES["small_files"]):
        sub = os.path.join(d, f"d{i // 1000:03}", f"e{(i // 50) % 20:02}")
        os.makedirs(sub, exist_ok=True)
        n = int(rnd.expovariate(1 / 3000)) + 10
        body = b" ".join(rnd.choice(words) for _ in range(n // 6 + 1))[:n] if i % 4 else rnd.randbytes(n)
        with open(os.path.join(sub, f"f{i:06}"), "wb") as f:
            f.write(body)


def edit_small(d, step):
    rnd = random.Random(100 + step)
    files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(d) for f in fs)
    for p in rnd.sample(files, len(files) // 100):
        with open(p, "ab") as f:
            f.write(b"edited %d\n" % step)
    nd = os.path.join(d, f"new{step}")
    os.makedirs(nd, exist_ok=True)
    for i in range(100):
        with open(os.path.join(nd, f"n{i}"), "wb") as f:
            f.write(rnd.randbytes(2000))


def gen_large(d):
    rnd = random.Random(2)
    os.makedirs(d, exist_ok=True)
    for i in range(SIZES["large_files"]):
        with open(os.path.join(d, f"large{i}.img"), "wb") as f:
            for _ in range(SIZES["large_mib"]):
                f.write(rnd.randbytes(1 << 20))


def edit_large(d, step):
    rnd = random.Random(200 + step)
    p0, p1, p2 = (os.path.join(d, f"large{i}.img") for i in range(3))
    with open(p0, "rb") as f:
        data = f.read()
    with open(p0, "wb") as f:  # a few bytes inserted near the start
        f.write(data[:4096] + b"inserted!" + data[4096:])
    with open(p1, "r+b") as f:  # a region overwritten
        f.seek(len(data) // 2)
        f.write(rnd.randbytes(1 << 20))
    with open(p2, "ab") as f:  # data appended
        f.write(rnd.randbytes(8 << 20))


def gen_random(d):
    rnd = random.Random(3)
    os.makedirs(d, exist_ok=True)
    per = min(256, SIZES["random_mib"])
    for i in range(SIZES["random_mib"] // per):
        with open(os.path.join(d, f"r{i:02}.bin"), "wb") as f:
            for _ in range(per):
                f.write(rnd.randbytes(1 << 20))


def edit_random(d, step):
    rnd = random.Random(300 + step)
    with open(os.path.join(d, f"added{step}.bin"), "wb") as f:
        for _ in range(32):
            f.write(rnd.randbytes(1 << 20))


def history_versions():
    """Successive versions of a real source tree: the cargo registry's crate sources,
    grouped into growing sets (each version adds crates and touches others)."""
    reg = os.path.expanduser("~/.cargo/registry/src")
    crates = sorted(os.path.join(reg, idx, c) for idx in os.listdir(reg) for c in os.listdir(os.path.join(reg, idx)))
    n = SIZES["history_versions"]
    return [crates[: max(1, len(crates) * (k + 1) // n)] for k in range(n)]


def gen_history(d, version=0):
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for c in history_versions()[version]:
        shutil.copytree(c, os.path.join(d, os.path.basename(c)), symlinks=True)


def edit_history(d, step):
    gen_history(d, min(step, SIZES["history_versions"] - 1))


def files_of(path):
    out = {}
    for dp, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dp, f)
            try:
                st = os.lstat(p)
                out[p] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                pass
    return out


def random_generation(src, g):
    """Generation g of incompressible data: a new file; the one from two generations ago goes."""
    rnd = random.Random(700 + g)
    with open(os.path.join(src, f"gen{g}.bin"), "wb") as f:
        for _ in range(SIZES["prune_gen_mib"]):
            f.write(rnd.randbytes(1 << 20))
    if g >= 2:
        os.remove(os.path.join(src, f"gen{g - 2}.bin"))


def history_window(src, g):
    """Generation g of a source tree: a window of the cargo registry's crates sliding
    forward, so old generations hold files no newer one has, mixed in packs with live ones."""
    reg = os.path.expanduser("~/.cargo/registry/src")
    crates = sorted(os.path.join(reg, idx, c) for idx in os.listdir(reg) for c in os.listdir(os.path.join(reg, idx)))
    window = max(1, len(crates) // 3)
    start = g * (len(crates) - window) // 7
    if os.path.exists(src):
        shutil.rmtree(src)
    os.makedirs(src)
    for c in crates[start:start + window]:
        shutil.copytree(c, os.path.join(src, os.path.basename(c)), symlinks=True)


def prune_workload(tools, results, name, generation, label):
    """8 generations, then forget all but the last 2 snapshots and prune, per tool.
    Measures time, peak RSS, bytes written and deleted, and the final size."""
    base = os.path.join(WORK, name)
    src = os.path.join(base, "src")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(src)
    inst = [(tname, cls(tname, os.path.join(base, f"repo-{tname}"))) for tname, cls in tools]
    for _, t in inst:
        t.init()
    print(f"== {name}: {label}", file=sys.stderr)
    for g in range(8):
        generation(src, g)
        for _, t in inst:
            t.backup(src)
    src_bytes = dir_bytes(src)
    subprocess.run(["sync"])
    for tname, t in inst:
        before = files_of(t.repo)
        steps = t.forget_prune(2)
        after = files_of(t.repo)
        secs = sum(x[0] for x in steps)
        rss = max(x[1] for x in steps)
        written = sum(v[0] for p, v in after.items() if before.get(p) != v)
        deleted = sum(v[0] for p, v in before.items() if after.get(p) != v)
        final = sum(v[0] for v in after.values())
        results.append({"workload": name, "step": "forget+prune", "tool": tname, "seconds": secs, "rss_kib": rss, "source_bytes": src_bytes,
                        "written": written, "deleted": deleted, "bytes": final})
        print(f"   {name:<15} forget+prune {tname:<7} {secs:8.2f}s  {rss / 1024:8.1f} MiB  wrote {written / 1e6:.1f} MB, deleted {deleted / 1e6:.1f} MB, final {final / 1e6:.1f} MB", file=sys.stderr)
    shutil.rmtree(base, ignore_errors=True)


WORKLOADS = {
    "small-files": (gen_small, edit_small),
    "large-files": (gen_large, edit_large),
    "incompressible": (gen_random, edit_random),
    "source-history": (gen_history, edit_history),
}

# ---------------------------------------------------------------- tools


class Tool:
    def __init__(self, name, repo, args=()):
        self.name, self.repo = name, repo
        # Options placed before the command (remote storage settings).
        self.args = list(args)
        self.snap = 0


class Vault(Tool):
    env = {"VAULT_PASSWORD": PASSWORD}

    def init(self):
        return sh([VAULT, *self.args, "-r", self.repo, "init", "-q"], self.env)

    def backup(self, src):
        return sh([VAULT, *self.args, "-r", self.repo, "backup", "-q", src], self.env)

    def restore(self, target):
        return sh([VAULT, *self.args, "-r", self.repo, "restore", "-q", "latest", "--target", target], self.env)

    def restore_again(self, target):
        return sh([VAULT, *self.args, "-r", self.repo, "restore", "-q", "latest", "--target", target, "--overwrite", "if-changed"], self.env)

    def copy_to(self, dest):
        # Shared chunker parameters and keys, as restic's copy is run: blobs cross as
        # they are.
        env = {**self.env, "VAULT_FROM_PASSWORD": PASSWORD}
        sh([VAULT, *self.args, "-r", dest, "init", "-q", "--from-repo", self.repo, "--copy-chunker-params"], env)
        return sh([VAULT, *self.args, "-r", dest, "copy", "-q", "--from-repo", self.repo], env)

    def check(self):
        return sh([VAULT, *self.args, "-r", self.repo, "check", "-q", "--read-data"], self.env)

    def forget_prune(self, keep):
        return [sh([VAULT, *self.args, "-r", self.repo, "forget", "-q", "--keep-last", str(keep), "--prune"], self.env)]


class Restic(Tool):
    env = {"RESTIC_PASSWORD": PASSWORD}

    def init(self):
        return sh(["restic", "-q", *self.args, "-r", self.repo, "init"], self.env)

    def backup(self, src):
        return sh(["restic", "-q", *self.args, "-r", self.repo, "backup", src], self.env)

    def restore(self, target):
        return sh(["restic", "-q", *self.args, "-r", self.repo, "restore", "latest", "--target", target], self.env)

    def check(self):
        return sh(["restic", "-q", *self.args, "-r", self.repo, "check", "--read-data"], self.env)

    def copy_to(self, dest):
        # Same chunker parameters, so restic's copy moves blobs without re-chunking.
        env = {**self.env, "RESTIC_FROM_PASSWORD": PASSWORD}
        sh(["restic", "-q", "-r", dest, "init", "--from-repo", self.repo, "--copy-chunker-params"], env)
        return sh(["restic", "-q", "-r", dest, "copy", "--from-repo", self.repo], env)

    def forget_prune(self, keep):
        return [sh(["restic", "-q", *self.args, "-r", self.repo, "forget", "--keep-last", str(keep), "--prune"], self.env)]


class Rustic(Tool):
    # Remote storage is a profile of OpenDAL options (rustic has no command-line options
    # for it): `args` is then ["-P", profile] and `config_home` the directory holding it.
    config_home = None

    @property
    def env(self):
        env = {"RUSTIC_PASSWORD": PASSWORD, "RUSTIC_NO_PROGRESS": "true"}
        if self.config_home:
            env["XDG_CONFIG_HOME"] = self.config_home
        return env

    def where(self):
        return self.args or ["-r", self.repo]

    def init(self):
        return sh(["rustic", *self.where(), "init"], self.env)

    def backup(self, src):
        return sh(["rustic", *self.where(), "backup", src], self.env)

    def restore(self, target):
        return sh(["rustic", *self.where(), "restore", "latest", target], self.env)

    def restore_again(self, target):
        # rustic compares what the target holds and restores only what differs.
        return sh(["rustic", *self.where(), "restore", "latest", target], self.env)

    def check(self):
        return sh(["rustic", *self.where(), "check", "--read-data"], self.env)

    def forget_prune(self, keep):
        # rustic keeps condemned packs for a grace period by default; delete at once, as
        # the others do, so that final sizes compare.
        return [
            sh(["rustic", *self.where(), "forget", "--keep-last", str(keep)], self.env),
            sh(["rustic", *self.where(), "prune", "--instant-delete"], self.env),
        ]


class Borg(Tool):
    env = {"BORG_PASSPHRASE": PASSWORD, "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def init(self):
        return sh(["borg", "init", "-e", "repokey-blake2", self.repo], self.env)

    def backup(self, src):
        self.snap += 1
        return sh(["borg", "create", "--compression", "zstd,3", f"{self.repo}::s{self.snap}", src], self.env)

    def restore(self, target):
        os.makedirs(target, exist_ok=True)
        return sh(["borg", "extract", f"{self.repo}::s{self.snap}"], self.env, cwd=target)

    def check(self):
        return sh(["borg", "check", "--verify-data", self.repo], self.env)

    def forget_prune(self, keep):
        return [
            sh(["borg", "prune", "--keep-last", str(keep), self.repo], self.env),
            sh(["borg", "compact", self.repo], self.env),
        ]


def available_tools():
    tools = [("vault", Vault)]
    for name, cls in (("restic", Restic), ("rustic", Rustic), ("borg", Borg)):
        if shutil.which(name):
            tools.append((name, cls))
        else:
            print(f"note: {name} is not installed; it is left out of this run", file=sys.stderr)
    return tools


# Restores per tool (in balanced order), and the pause before each: this VM's file-system
# costs drift with every restore and delete before them.
RESTORE_ROUNDS = int(os.environ.get("VAULT_BENCH_RESTORE_ROUNDS", "3"))
SETTLE_SECONDS = float(os.environ.get("VAULT_BENCH_SETTLE", "3"))


def balanced_restores(inst, target_of):
    """Every tool restores 2 * RESTORE_ROUNDS times in balanced order (A B C C B A ...),
    with `sync` and a pause before each; returns {tool: (median seconds, peak RSS)}. The
    last restore of each tool stays in its target."""
    runs = {tname: [] for tname, _ in inst}
    order = list(inst) + list(reversed(inst))
    for tname, t in order * RESTORE_ROUNDS:
        target = target_of(tname)
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run(["sync"])
        time.sleep(SETTLE_SECONDS)
        runs[tname].append(t.restore(target))
    out = {}
    for tname, r in runs.items():
        secs = sorted(x[0] for x in r)
        out[tname] = ((secs[(len(secs) - 1) // 2] + secs[len(secs) // 2]) / 2, max(x[1] for x in r))
        print(f"   restores of {tname}: " + " ".join(f"{x[0]:.2f}" for x in r), file=sys.stderr)
    return out


# ---------------------------------------------------------------- remote storage

# Workload: (storage kind, round trip in ms added by the latency proxy in front of it).
REMOTE = {"remote-s3": ("s3", 0), "remote-sftp": ("sftp", 0),
          "remote-s3-rtt30": ("s3", 30), "remote-sftp-rtt30": ("sftp", 30)}
PROXY = os.path.join(ROOT, "target/release/examples/latency_proxy")


def behind_proxy(srv, kind, rtt_ms):
    """Starts the latency proxy in front of the server; returns it and the settings that
    lead every tool through it."""
    if kind == "s3":
        upstream = srv["VAULT_TEST_S3_ENDPOINT"].removeprefix("http://")
    else:
        upstream = "127.0.0.1:" + srv["VAULT_TEST_SFTP"].rsplit(":", 1)[1]
    proxy = subprocess.Popen([PROXY, "--to", upstream, "--rtt-ms", str(rtt_ms)], stdout=subprocess.PIPE, text=True)
    addr = proxy.stdout.readline().strip()
    srv = dict(srv)
    if kind == "s3":
        srv["VAULT_TEST_S3_ENDPOINT"] = f"http://{addr}"
    else:
        srv["VAULT_TEST_SFTP"] = srv["VAULT_TEST_SFTP"].rsplit(":", 1)[0] + ":" + addr.rsplit(":", 1)[1]
    return proxy, srv


def test_servers():
    """Settings of the servers scripts/bench started with scripts/test-servers."""
    path = os.path.join(os.environ.get("VAULT_TEST_SERVERS_DIR", "/tmp/vault-test-servers"), "env")
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.strip().removeprefix("export ").partition("=")
            env[k] = v
    return env


def remote_tools(tools, kind, srv, tag):
    """The tools that reach this storage, each with its repository there (borg reaches
    only SSH with borg on the server: it is left out)."""
    out = []
    port = srv["VAULT_TEST_SFTP"].rsplit(":", 1)[1]
    for name, cls in tools:
        if name == "vault" and kind == "s3":
            args = ["-o", f"s3.endpoint={srv['VAULT_TEST_S3_ENDPOINT']}", "-o", f"s3.region={srv['VAULT_TEST_S3_REGION']}"]
            repo = f"s3://{srv['VAULT_TEST_S3_BUCKET']}/bench-{tag}-vault"
        elif name == "vault":
            args = ["-o", f"sftp.key={srv['VAULT_TEST_SFTP_KEY']}", "-o", "sftp.known-hosts=accept"]
            repo = f"{srv['VAULT_TEST_SFTP']}{srv['VAULT_TEST_SFTP_DIR']}/bench-{tag}-vault"
        elif name == "restic" and kind == "s3":
            args = []
            repo = f"s3:{srv['VAULT_TEST_S3_ENDPOINT']}/{srv['VAULT_TEST_S3_BUCKET']}/bench-{tag}-restic"
        elif name == "restic":
            ssh = (f"ssh -i {srv['VAULT_TEST_SFTP_KEY']} -p {port} -o StrictHostKeyChecking=no "
                   f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR root@127.0.0.1 -s sftp")
            args = ["-o", f"sftp.command={ssh}"]
            repo = f"sftp:root@127.0.0.1:{srv['VAULT_TEST_SFTP_DIR']}/bench-{tag}-restic"
        elif name == "rustic":
            out.append((name, rustic_profile(kind, srv, port, tag)))
            continue
        else:
            continue
        out.append((name, cls(name, repo, args)))
    return out


def rustic_profile(kind, srv, port, tag):
    """rustic with a profile that leads it to the same server through OpenDAL."""
    home = os.path.join(WORK, "rustic-config")
    os.makedirs(os.path.join(home, "rustic"), exist_ok=True)
    if kind == "s3":
        options = {"endpoint": srv["VAULT_TEST_S3_ENDPOINT"], "bucket": srv["VAULT_TEST_S3_BUCKET"],
                   "region": srv["VAULT_TEST_S3_REGION"], "access_key_id": srv["VAULT_TEST_S3_KEY_ID"],
                   "secret_access_key": srv["VAULT_TEST_S3_SECRET"], "root": f"/bench-{tag}-rustic"}
    else:
        options = {"endpoint": f"ssh://127.0.0.1:{port}", "user": "root", "key": srv["VAULT_TEST_SFTP_KEY"],
                   "root": f"{srv['VAULT_TEST_SFTP_DIR']}/bench-{tag}-rustic", "known_hosts_strategy": "accept"}
    profile = f"bench-{kind}-{tag}"
    with open(os.path.join(home, "rustic", profile + ".toml"), "w") as f:
        f.write(f'[repository]\nrepository = "opendal:{kind}"\n[repository.options]\n')
        f.writelines(f"{k} = {json.dumps(v)}\n" for k, v in options.items())
    t = Rustic("rustic", f"opendal:{kind}", ["-P", profile])
    t.config_home = home
    return t


def remote_workload(tools, results, wl):
    """Incompressible data backed up to, checked on and restored from a server on
    loopback (behind the latency proxy for the -rtt workloads); restores in balanced
    order (A B B A), the median kept."""
    kind, rtt_ms = REMOTE[wl]
    srv = test_servers()
    proxy = None
    if rtt_ms:
        proxy, srv = behind_proxy(srv, kind, rtt_ms)
    os.environ.update({"AWS_ACCESS_KEY_ID": srv["VAULT_TEST_S3_KEY_ID"], "AWS_SECRET_ACCESS_KEY": srv["VAULT_TEST_S3_SECRET"],
                       "AWS_DEFAULT_REGION": srv["VAULT_TEST_S3_REGION"]})
    base = os.path.join(WORK, wl)
    shutil.rmtree(base, ignore_errors=True)
    src = os.path.join(base, "src")
    print(f"== {wl}: generating data", file=sys.stderr)
    gen_random(src)
    src_bytes = dir_bytes(src)
    inst = remote_tools(tools, kind, srv, f"{int(time.time())}")

    def record(step, tname, secs, rss):
        results.append({"workload": wl, "step": step, "tool": tname, "seconds": secs, "rss_kib": rss, "source_bytes": src_bytes})
        print(f"   {wl:<15} {step:<12} {tname:<7} {secs:8.2f}s  {rss / 1024:8.1f} MiB", file=sys.stderr)

    for step, fn in (("init", lambda t: t.init()), ("initial", lambda t: t.backup(src)), ("check-data", lambda t: t.check())):
        for tname, t in inst:
            record(step, tname, *fn(t))
    for tname, (secs, rss) in balanced_restores(inst, lambda n: os.path.join(base, f"restore-{n}")).items():
        record("restore", tname, secs, rss)
    shutil.rmtree(base, ignore_errors=True)
    if proxy:
        proxy.kill()


# ---------------------------------------------------------------- run


def main():
    only = sys.argv[1:] or list(WORKLOADS) + ["prune", "prune-history"] + list(REMOTE)
    os.makedirs(WORK, exist_ok=True)
    results = []  # dicts: workload, step, tool, seconds, rss_kib, bytes
    tools = available_tools()
    load = os.getloadavg()
    prims = json.loads(subprocess.run([VAULT, "--json", "bench-primitives"], capture_output=True, check=True).stdout)
    for wl in only:
        if wl == "prune":
            prune_workload(tools, results, "prune", random_generation,
                           f"8 generations of {SIZES['prune_gen_mib']} MiB incompressible, each snapshot holding the newest two; keep 2")
            continue
        if wl in REMOTE:
            remote_workload(tools, results, wl)
            continue
        if wl == "prune-history":
            prune_workload(tools, results, "prune-history", history_window, "8 generations of a sliding window of source files; keep 2")
            continue
        gen, edit = WORKLOADS[wl]
        base = os.path.join(WORK, wl)
        src = os.path.join(base, "src")
        if os.path.exists(base):
            shutil.rmtree(base)
        os.makedirs(base)
        print(f"== {wl}: generating data", file=sys.stderr)
        gen(src)
        src_bytes = dir_bytes(src)
        inst = [(name, cls(name, os.path.join(base, f"repo-{name}"))) for name, cls in tools]

        def step(name, fn):
            for tname, t in inst:
                r = fn(t)
                if r is None:
                    continue
                secs, rss = r
                results.append({"workload": wl, "step": name, "tool": tname, "seconds": secs, "rss_kib": rss, "source_bytes": src_bytes})
                print(f"   {wl:<15} {name:<12} {tname:<7} {secs:8.2f}s  {rss / 1024:8.1f} MiB", file=sys.stderr)

        step("init", lambda t: t.init())
        step("initial", lambda t: t.backup(src))
        step("unchanged", lambda t: t.backup(src))
        edit(src, 1)
        step("edited", lambda t: t.backup(src))

        # Restoring onto a complete earlier restore (the rerun of an interrupted one, or
        # a restore onto an older copy): only tools that compare what is there take part
        # (restic 0.14 has no --overwrite; borg extract always writes).
        def restore_again(t):
            target = os.path.join(base, f"restore-{t.name}")
            r = t.restore_again(target) if hasattr(t, "restore_again") else None
            shutil.rmtree(target, ignore_errors=True)
            return r

        # Copying every snapshot into a second, new repository (an offsite copy): only
        # tools with a copy command take part.
        def copy(t):
            if not hasattr(t, "copy_to"):
                return None
            dest = os.path.join(base, f"copy-{t.name}")
            shutil.rmtree(dest, ignore_errors=True)
            r = t.copy_to(dest)
            results.append({"workload": wl, "step": "copy-size", "tool": t.name, "seconds": 0, "rss_kib": 0, "bytes": dir_bytes(dest), "source_bytes": src_bytes})
            shutil.rmtree(dest, ignore_errors=True)
            return r

        step("copy", copy)
        for tname, (secs, rss) in balanced_restores(inst, lambda n: os.path.join(base, f"restore-{n}")).items():
            results.append({"workload": wl, "step": "restore", "tool": tname, "seconds": secs, "rss_kib": rss, "source_bytes": src_bytes})
            print(f"   {wl:<15} {'restore':<12} {tname:<7} {secs:8.2f}s  {rss / 1024:8.1f} MiB (median)", file=sys.stderr)
        step("re-restore", restore_again)
        step("check-data", lambda t: t.check())
        for tname, t in inst:
            results.append({"workload": wl, "step": "repo-size", "tool": tname, "seconds": 0, "rss_kib": 0, "bytes": dir_bytes(t.repo), "source_bytes": src_bytes})
        shutil.rmtree(base, ignore_errors=True)

    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump({"load_before": load, "scale": SCALE, "primitives": prims, "results": results}, f, indent=1)
    report(results, load, prims)


def report(results, load, prims=None):
    peers = sorted({r["tool"] for r in results} - {"vault"})
    print(f"\nvault against its peers ({SCALE} scale; load average before the run {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
    print("time steps: best peer's time / vault's time (above 1 = vault faster); RSS: vault / restic (below 1 = leaner);")
    print("repo size: vault / smallest peer (at most 1 = smallest)\n")
    head = f"{'workload':<15} {'step':<11} {'ratio':>7}  {'vault':>10}  " + "  ".join(f"{p:>10}" for p in peers)
    print(head)
    print("-" * len(head))
    by = {}
    for r in results:
        by.setdefault((r["workload"], r["step"]), {})[r["tool"]] = r
    for (wl, st), tools in by.items():
        if "vault" not in tools:
            continue
        v = tools["vault"]
        if st == "forget+prune":
            best = min((tools[p]["seconds"] for p in peers if p in tools), default=0)
            ratio = best / v["seconds"] if v["seconds"] else float("nan")
            cells = [f"{v['seconds']:9.2f}s"] + [f"{tools[p]['seconds']:9.2f}s" if p in tools else "-" for p in peers]
            print(f"{wl:<15} {st:<11} {ratio:7.2f}  " + "  ".join(f"{c:>10}" for c in cells))
            for label, key, scale, unit in (("RSS", "rss_kib", 1 / 1024, "MB"), ("written", "written", 1e-6, "MB"), ("deleted", "deleted", 1e-6, "MB"), ("final size", "bytes", 1e-6, "MB")):
                ref = {"RSS": tools.get("restic", {}).get("rss_kib"), "final size": min((tools[p]["bytes"] for p in peers if p in tools), default=None)}.get(label)
                r = f"{v[key] / ref:7.2f}" if ref else "       "
                print(f"{'':<15} {label:<11} {r}  " + "  ".join(f"{x[key] * scale:8.1f}{unit}" for x in [v] + [tools[p] for p in peers if p in tools]))
            continue
        if st in ("repo-size", "copy-size"):
            vals = {t: x["bytes"] for t, x in tools.items()}
            best = min((vals[p] for p in peers if p in vals), default=0)
            ratio = vals["vault"] / best if best else float("nan")
            cells = [f"{vals['vault'] / 1e6:8.1f}MB"] + [f"{vals[p] / 1e6:8.1f}MB" if p in vals else "-" for p in peers]
        else:
            best = min((tools[p]["seconds"] for p in peers if p in tools), default=0)
            ratio = best / v["seconds"] if v["seconds"] else float("nan")
            cells = [f"{v['seconds']:9.2f}s"] + [f"{tools[p]['seconds']:9.2f}s" if p in tools else "-" for p in peers]
        print(f"{wl:<15} {st:<11} {ratio:7.2f}  " + "  ".join(f"{c:>10}" for c in cells))
        if st in ("initial", "restore") and "restic" in tools:
            rss = v["rss_kib"] / max(tools["restic"]["rss_kib"], 1)
            print(f"{'':<15} {st + ' RSS':<11} {rss:7.2f}  {v['rss_kib'] / 1024:8.1f}MB  " + "  ".join(f"{tools[p]['rss_kib'] / 1024:8.1f}MB" if p in tools else "-" for p in peers))
    for (wl, st), tools in by.items():
        fresh = by.get((wl, "restore"), {}).get("vault")
        if st == "re-restore" and "vault" in tools and fresh and tools["vault"]["seconds"]:
            print(f"vault restore onto an unchanged target, {wl:<15} {fresh['seconds'] / tools['vault']['seconds']:6.1f}x faster than a fresh restore")
    if prims:
        limit = prims["pipeline_limit_incompressible"]
        print(f"\npipeline limit here (bench-primitives, {prims['cores']} cores): {limit:.0f} MB/s incompressible, {prims['pipeline_limit_text']:.0f} MB/s text")
        for (wl, st), tools in by.items():
            if st == "initial" and "vault" in tools and tools["vault"]["seconds"]:
                mbs = tools["vault"]["source_bytes"] / tools["vault"]["seconds"] / 1e6
                print(f"vault initial backup, {wl:<15} {mbs:7.0f} MB/s = {mbs / limit * 100:5.1f} % of the incompressible limit")


if __name__ == "__main__":
    main()
