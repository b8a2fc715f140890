"""The job graph: dependency cycles, a stable topological order, --only selection, --force's reach."""
from __future__ import annotations

from pipeline.errors import UserError


def find_cycles(deps: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as [a, b, ..., a]; [] when acyclic.

    deps: job -> the jobs it needs (names not in deps are ignored: they are reported elsewhere).
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def strongconnect(v: str) -> None:  # Tarjan; the graphs are tiny, recursion depth is the job count
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in deps.get(v, []):
            if w not in deps:
                continue
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            components.append(comp)

    for v in deps:
        if v not in index:
            strongconnect(v)

    order = {name: i for i, name in enumerate(deps)}
    cycles = []
    for comp in components:
        members = set(comp)
        start = min(comp, key=order.__getitem__)
        if len(comp) == 1 and start not in deps[start]:
            continue
        # Walk inside the component until a job repeats: that closes a cycle through `start`'s component.
        path, seen = [start], {start: 0}
        while True:
            nxt = next(w for w in deps[path[-1]] if w in members)
            if nxt in seen:
                cycles.append(path[seen[nxt]:] + [nxt])
                break
            seen[nxt] = len(path)
            path.append(nxt)
    cycles.sort(key=lambda c: order[c[0]])
    return cycles


def topological_order(deps: dict[str, list[str]]) -> list[str]:
    """Every job after the jobs it needs; among jobs that are ready, file order (deps' key order)."""
    order = list(deps)
    done: set[str] = set()
    result: list[str] = []
    while len(result) < len(order):
        ready = [n for n in order if n not in done and all(d in done for d in deps[n])]
        if not ready:
            raise ValueError("the job graph has a cycle")  # validation reports cycles before this is reached
        result.append(ready[0])
        done.add(ready[0])
    return result


def select(preset, only=None) -> list[str]:
    """Job names to consider, in dependency order: all, or the `only` jobs plus everything they need."""
    jobs = preset.jobs
    order = topological_order({n: list(j.deps) for n, j in jobs.items()})
    if not only:
        return order
    from pipeline.text import close_matches

    wanted: set[str] = set()
    for name in only:
        if name not in jobs:
            close = close_matches(name, jobs, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UserError(f"--only {name}: no such job in {preset.name}; {hint}jobs: {', '.join(jobs)}")
        stack = [name]
        while stack:
            n = stack.pop()
            if n not in wanted:
                wanted.add(n)
                stack.extend(jobs[n].deps)
    return [n for n in order if n in wanted]


def forced_jobs(names: list[str], only, force: bool) -> set[str]:
    """--force reruns the jobs asked for: the --only jobs (not what they need), or every job."""
    if not force:
        return set()
    return set(only) if only else set(names)
