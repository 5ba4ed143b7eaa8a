// The team's runs, newest first, a page at a time: status and progress (live over SSE for the first active runs
// of the page), filters (status, scenario), cancel, and a selection to compare.
import { useEffect, useState } from "preact/hooks";
import { api, follow, type Page, type Run, type RunStatus } from "../api";
import { ErrorBox, Loading, Pager, Progress, Status } from "../components/common";
import { shortId, when } from "../format";
import { href, navigate } from "../router";

const PAGE = 25;
// SSE streams per page: a browser opens at most 6 connections to one origin, and the page's other requests need some
const LIVE_STREAMS = 3;
// how often the page is read again while one of its runs is queued or running (the ones not followed live)
const REFRESH_MS = 4000;
const STATUSES: RunStatus[] = ["queued", "running", "succeeded", "failed", "cancelled"];

export function active(status: RunStatus): boolean {
  return status === "queued" || status === "running";
}

export async function cancelRun(run: Run): Promise<Run> {
  return api<Run>(`/runs/${run.id}/cancel`, { method: "POST" });
}

export function RunsPage({ query }: { query: URLSearchParams }) {
  const offset = Number(query.get("offset") ?? 0) || 0;
  const status = query.get("status") ?? "";
  const scenarioId = query.get("scenario_id") ?? "";
  const [page, setPage] = useState<Page<Run> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string[]>([]);
  const [tick, setTick] = useState(0);
  const [live, setLive] = useState<Record<string, { progress: number; status?: RunStatus }>>({});

  const params = (changes: Record<string, string | number>) =>
    href("runs", { status, scenario_id: scenarioId, offset, ...changes });

  useEffect(() => {
    const search = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status) search.set("status", status);
    if (scenarioId) search.set("scenario_id", scenarioId);
    const controller = new AbortController();
    api<Page<Run>>(`/runs?${search}`, { signal: controller.signal }).then(
      (next) => {
        setPage(next);
        setError(null);
      },
      (problem) => controller.signal.aborted || setError(problem),
    );
    return () => controller.abort();
  }, [offset, status, scenarioId, tick]);

  const activeIds = (page?.items ?? []).filter((r) => active(r.status)).map((r) => r.id);
  const followed = activeIds.slice(0, LIVE_STREAMS);

  // the page again every few seconds while runs on it are active
  useEffect(() => {
    if (!activeIds.length) return;
    const timer = setTimeout(() => setTick((t) => t + 1), REFRESH_MS);
    return () => clearTimeout(timer);
  }, [page]);

  // live progress of the first active runs
  useEffect(() => {
    const controller = new AbortController();
    for (const id of followed) {
      follow(
        `/streams/${id}`,
        (event) => {
          const data = event.data ?? {};
          setLive((current) => ({
            ...current,
            [id]: {
              progress: event.event === "succeeded" ? 1 : (data.share_done ?? current[id]?.progress ?? 0),
              status: (data.status as RunStatus) ?? (event.event === "progress" ? "running" : current[id]?.status),
            },
          }));
          if (["succeeded", "failed", "cancelled"].includes(event.event)) setTick((t) => t + 1);
        },
        controller.signal,
      ).catch(() => undefined);
    }
    return () => controller.abort();
  }, [followed.join(",")]);

  const toggle = (id: string) =>
    setSelected((current) => (current.includes(id) ? current.filter((x) => x !== id) : [...current, id]));

  return (
    <>
      <h1>Runs</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="filters">
        <label for="status-filter">Status</label>
        <select
          id="status-filter"
          value={status}
          onChange={(e) => navigate(params({ status: (e.target as HTMLSelectElement).value, offset: 0 }))}
        >
          <option value="">any</option>
          {STATUSES.map((s) => (
            <option value={s} key={s}>
              {s}
            </option>
          ))}
        </select>
        {scenarioId ? (
          <span class="chip">
            scenario <code>{shortId(scenarioId)}</code>{" "}
            <a href={params({ scenario_id: "", offset: 0 })} aria-label="remove the scenario filter">
              ✕
            </a>
          </span>
        ) : null}
        <button
          type="button"
          class="primary"
          disabled={selected.length < 2}
          onClick={() => navigate(href("compare", { runs: selected.join(",") }))}
        >
          Compare selected ({selected.length})
        </button>
        <a class="button" href={href("scenarios")}>
          Launch a run…
        </a>
      </form>
      <ErrorBox error={error} />
      {!page ? (
        <Loading what="runs" />
      ) : (
        <>
          <table class="runs">
            <caption class="sr-only">Runs of your team, newest first</caption>
            <thead>
              <tr>
                <th scope="col">
                  <span class="sr-only">Select to compare</span>
                </th>
                <th scope="col">Run</th>
                <th scope="col">Scenario</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Sessions</th>
                <th scope="col">Seed</th>
                <th scope="col">Overrides</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((run) => {
                const now = live[run.id];
                const shownStatus = (now?.status && active(run.status) ? now.status : run.status) as RunStatus;
                const progress = Math.max(run.progress, now?.progress ?? 0);
                return (
                  <tr key={run.id} data-run={run.id}>
                    <td>
                      <input
                        type="checkbox"
                        aria-label={`select run ${shortId(run.id)} to compare`}
                        checked={selected.includes(run.id)}
                        onChange={() => toggle(run.id)}
                      />
                    </td>
                    <th scope="row">
                      <a href={href("runs", run.id)}>
                        <code>{shortId(run.id)}</code>
                      </a>
                    </th>
                    <td>
                      <a
                        href={params({ scenario_id: run.scenario_id, offset: 0 })}
                        title={`runs of scenario ${run.scenario_id} (effective fingerprint ${run.scenario_hash.slice(0, 12)})`}
                      >
                        {run.scenario_name ?? shortId(run.scenario_id)}
                      </a>
                    </td>
                    <td>
                      <Status status={shownStatus} />
                    </td>
                    <td>
                      <Progress value={progress} label={`progress of run ${shortId(run.id)}`} />
                    </td>
                    <td>{run.sessions}</td>
                    <td>{run.seed}</td>
                    <td class="overrides">{run.overrides.join(", ") || "–"}</td>
                    <td>{when(run.created_at)}</td>
                    <td>
                      {active(run.status) ? (
                        <button
                          type="button"
                          class="small"
                          disabled={run.cancel_requested}
                          onClick={() => cancelRun(run).then(() => setTick((t) => t + 1), setError)}
                          aria-label={`cancel run ${shortId(run.id)}`}
                        >
                          {run.cancel_requested ? "Cancelling…" : "Cancel"}
                        </button>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {!page.items.length ? <p>No runs{status ? ` ${status}` : ""} yet.</p> : null}
          <Pager
            offset={offset}
            limit={PAGE}
            total={page.total}
            onPage={(next) => navigate(params({ offset: next }))}
          />
        </>
      )}
    </>
  );
}
