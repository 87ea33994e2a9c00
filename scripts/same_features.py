"""Fails when `cargo test` would compile a dependency of the recspec binary with other features
than `cargo build` does.

    python3 scripts/same_features.py

Cargo unifies the features of every dependency across the targets of one build, so the
dev-dependencies (insta, criterion, ureq) switch features on in crates the binary also uses
(`either`'s `use_std` through rayon, `regex`'s `std` through burn) in test builds only. The two
builds then compile rayon, burn and recspec itself against differently configured crates and
leave two different `target/release/recspec` binaries, which trained at different speeds
(issue 25). The feature pins in Cargo.toml make the two graphs agree; this check keeps them so.
"""

import subprocess
import sys


def features(edges):
    """{(crate, version): set of features} of the dependency graph with these edge kinds."""
    run = subprocess.run(
        ["cargo", "tree", "--locked", "-e", edges, "--prefix", "none", "-f", "{p}|{f}"],
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"cargo tree -e {edges} failed:\n{run.stderr}")
    out = run.stdout
    graph = {}
    for line in out.splitlines():
        if "|" not in line:
            continue
        package, feats = line.split("|", 1)
        name, version = package.split()[:2]
        feats = feats.replace("(*)", "").strip()
        graph.setdefault((name, version), set()).update(f for f in feats.split(",") if f)
    return graph


def main():
    build = features("normal,build")
    test = features("normal,build,dev")
    differences = []
    for key in sorted(build):
        extra = test.get(key, set()) - build[key]
        if extra:
            differences.append(f"  {key[0]} {key[1]}: the test build adds {', '.join(sorted(extra))}")
    if differences:
        print(
            "the test build compiles these dependencies of the binary with more features than "
            "`cargo build` (pin them in Cargo.toml's [dependencies]):\n" + "\n".join(differences),
            file=sys.stderr,
        )
        return 1
    print(f"same features: {len(build)} crates of the binary's graph build alike in test and release builds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
