// One run: status and live progress (SSE), cancel; once it succeeded, its summary table, the price paths against
// the Nash and monopoly prices, the impulse response, the distribution of Δ across sessions, and its files.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, download, follow, type PricePaths, type Result, type Run, type RunStatus, saveBlob } from "../api";
import { Chart, histogram, type Line, MONOPOLY_COLOR, NASH_COLOR, PALETTE } from "../components/Chart";
import { ErrorBox, Loading, Progress, Section, Status } from "../components/common";
import { count, shortId, when } from "../format";
import { href } from "../router";
import { summaryRows } from "../summary";
import { active, cancelRun } from "./Runs";

export function SummaryTable({ summary }: { summary: Record<string, any> }) {
  return (
    <table class="summary" data-testid="summary">
      <thead>
        <tr>
          <th scope="col">Measure</th>
          <th scope="col">Value</th>
          <th scope="col">95% interval</th>
        </tr>
      </thead>
      <tbody>
        {summaryRows(summary).map((row) => (
          <tr key={row.label}>
            <th scope="row" title={row.hint}>
              {row.label}
            </th>
            <td class="number">{row.value}</td>
            <td class="number">{row.ci ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Flat lines at each distinct benchmark value (one when the firms are symmetric). */
export function benchmarkLines(x: number[], nash: (number | null)[], monopoly: (number | null)[]): Line[] {
  const lines: Line[] = [];
  const distinct = (values: (number | null)[]) => [
    ...new Set(values.filter((v): v is number => v !== null).map((v) => +v.toFixed(6))),
  ];
  for (const [name, values, color] of [
    ["Nash", nash, NASH_COLOR],
    ["monopoly", monopoly, MONOPOLY_COLOR],
  ] as const)
    distinct(values).forEach((value, i, all) =>
      lines.push({
        label: all.length > 1 ? `${name} price (firm ${i + 1})` : `${name} price`,
        values: x.map(() => value),
        color,
        dash: [6, 4],
        width: 1.5,
      }),
    );
  return lines;
}

function PriceChart({ runId, sessions }: { runId: string; sessions: number }) {
  const [session, setSession] = useState("");
  const [paths, setPaths] = useState<PricePaths | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setPaths(null);
    setError(null);
    api<PricePaths>(`/results/${runId}/prices${session ? `?session=${session}` : ""}`).then(setPaths, setError);
  }, [runId, session]);
  const lines = useMemo(() => {
    if (!paths) return [];
    return [
      ...paths.price.map((values, firm) => ({
        label: `firm ${firm + 1}`,
        values,
        color: PALETTE[firm % PALETTE.length],
      })),
      ...benchmarkLines(paths.period, paths.nash_price, paths.monopoly_price),
    ];
  }, [paths]);
  const tailLines = useMemo(() => {
    if (!paths?.tail) return [];
    return [
      ...paths.tail.price.map((values, firm) => ({
        label: `firm ${firm + 1}`,
        values,
        color: PALETTE[firm % PALETTE.length],
        points: true,
      })),
      ...benchmarkLines(paths.tail.period, paths.nash_price, paths.monopoly_price),
    ];
  }, [paths]);
  return (
    <Section title="Price paths" id="prices">
      <div class="toolbar">
        <label for="session-select">Sessions shown</label>
        <select id="session-select" value={session} onChange={(e) => setSession((e.target as HTMLSelectElement).value)}>
          <option value="">mean of all {sessions} sessions</option>
          {Array.from({ length: Math.min(sessions, 200) }, (_, i) => (
            <option value={String(i)} key={i}>
              session {i}
            </option>
          ))}
        </select>
        <span class="muted">Drag to zoom, double-click to zoom out; the legend shows the values under the cursor.</span>
      </div>
      <ErrorBox error={error} />
      {paths ? (
        <>
          <Chart
            x={paths.period}
            lines={lines}
            xLabel="period"
            yLabel="price"
            testId="price-chart"
            label={`Mean price of each firm by period${paths.session === null ? `, averaged over ${paths.sessions} sessions` : ` in session ${paths.session}`}, against the Nash and monopoly prices`}
          />
          {paths.tail && paths.tail.period.length ? (
            <>
              <h3>Last periods of session {paths.session}, one by one (the limit cycle)</h3>
              <Chart
                x={paths.tail.period}
                lines={tailLines}
                xLabel="period"
                yLabel="price"
                height={220}
                label="Prices in the last periods of the session"
              />
            </>
          ) : null}
        </>
      ) : error ? null : (
        <Loading what="the price paths" />
      )}
    </Section>
  );
}

function ImpulseChart({ summary }: { summary: Record<string, any> }) {
  const ir = summary.impulse_response;
  const lines = useMemo(() => {
    if (!ir?.tau?.length) return [];
    const firms = ir.price[0]?.length ?? 0;
    return [
      ...Array.from({ length: firms }, (_, f) => ({
        label: `firm ${f + 1}`,
        values: ir.price.map((row: number[]) => row[f]),
        color: PALETTE[f % PALETTE.length],
      })),
      ...Array.from({ length: firms }, (_, f) => ({
        label: `firm ${f + 1} without the deviation`,
        values: ir.counterfactual_price.map((row: number[]) => row[f]),
        color: PALETTE[f % PALETTE.length],
        dash: [2, 3],
        width: 1,
      })),
      ...benchmarkLines(ir.tau, summary.benchmarks?.nash_price ?? [], summary.benchmarks?.monopoly_price ?? []),
    ];
  }, [ir]);
  if (!lines.length) return null;
  return (
    <Section title="Impulse response to a forced deviation" id="impulse">
      <p class="muted">
        Mean prices over sessions around a one-period deviation to the static best response at τ = 0 (dotted: the same
        periods without the deviation).
      </p>
      <Chart
        x={ir.tau}
        lines={lines}
        xLabel="τ (periods after the deviation)"
        yLabel="price"
        height={260}
        label="Impulse response: each firm's mean price around the forced deviation"
        testId="impulse-chart"
      />
    </Section>
  );
}

function DeltaDistribution({ sessions }: { sessions: Record<string, any>[] | null }) {
  const gains: number[] = (sessions ?? []).map((s) => s.profit_gain);
  const { x, counts } = useMemo(
    () => histogram(gains, Math.max(5, Math.min(30, Math.ceil(Math.sqrt(gains.length)) * 2))),
    [sessions],
  );
  const lines = useMemo(() => [{ label: "sessions", values: counts, color: PALETTE[0], bars: true }], [counts]);
  if (!sessions)
    return (
      <Section title="Δ across sessions" id="delta">
        <Loading what="the sessions" />
      </Section>
    );
  if (!x.length) return null;
  return (
    <Section title="Δ across sessions" id="delta">
      <Chart
        x={x}
        lines={lines}
        xLabel="Δ (profit gain)"
        yLabel="sessions"
        height={220}
        label={`Histogram of the profit gain Δ over ${gains.length} sessions`}
        testId="delta-chart"
      />
    </Section>
  );
}

const SESSION_COLUMNS = [
  "session",
  "seed",
  "periods",
  "converged",
  "convergence_period",
  "profit_gain",
  "mean_price",
  "price_index",
  "consumer_surplus",
  "consumer_surplus_loss",
  "cycle_length",
  "cycle_label",
  "ir_punishment",
  "ir_punishment_length",
];

function sessionsCsv(sessions: Record<string, any>[]): Blob {
  const rows = sessions.map((s) =>
    SESSION_COLUMNS.map((c) => (s[c] === null || s[c] === undefined ? "" : String(s[c]))).join(","),
  );
  return new Blob([[SESSION_COLUMNS.join(","), ...rows].join("\n") + "\n"], { type: "text/csv" });
}

const FILES: [string, string][] = [
  ["panel", "Panel (Parquet)"],
  ["impulse", "Impulse response (Parquet)"],
  ["summary", "Summary (JSON)"],
  ["config", "Config (JSON)"],
  ["scenario", "Scenario (JSON)"],
  ["log", "Log"],
  ["prices_plot", "Price plot (PNG)"],
  ["impulse_plot", "Impulse plot (PNG)"],
];

function Downloads({ result, sessions }: { result: Result; sessions: Record<string, any>[] | null }) {
  const [error, setError] = useState<unknown>(null);
  return (
    <Section title="Downloads" id="downloads">
      <ul class="downloads">
        {FILES.filter(([name]) => result.artifacts[name]).map(([name, label]) => {
          const artifact = result.artifacts[name];
          return (
            <li key={name}>
              {artifact.presigned_url ? (
                <a href={artifact.presigned_url} download target="_blank" rel="noopener noreferrer">
                  {label}
                </a>
              ) : (
                <button
                  type="button"
                  class="link"
                  onClick={() => download(artifact.url, `${result.run_id}-${name}`).catch(setError)}
                >
                  {label}
                </button>
              )}
            </li>
          );
        })}
        {sessions ? (
          <li>
            <button
              type="button"
              class="link"
              onClick={() => saveBlob(sessionsCsv(sessions), `${result.run_id}-sessions.csv`)}
            >
              Sessions (CSV)
            </button>
          </li>
        ) : null}
      </ul>
      <ErrorBox error={error} />
    </Section>
  );
}

export function RunPage({ runId }: { runId: string }) {
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [live, setLive] = useState<{ progress: number; status: RunStatus; detail: string } | null>(null);
  const [result, setResult] = useState<Result | null>(null);
  const [resultError, setResultError] = useState<unknown>(null);
  const [sessions, setSessions] = useState<Record<string, any>[] | null>(null);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    setError(null);
    api<Run>(`/runs/${encodeURIComponent(runId)}`).then(setRun, (problem) => {
      setRun(null);
      setError(problem);
    });
  }, [runId, version]);

  const status: RunStatus | undefined = live?.status ?? run?.status;

  // live progress until the run is over
  useEffect(() => {
    if (!run || !active(run.status)) return;
    const controller = new AbortController();
    follow(
      `/streams/${run.id}`,
      (event) => {
        const d = event.data ?? {};
        if (event.event === "progress")
          setLive({
            progress: d.share_done ?? 0,
            status: "running",
            detail: `${d.sessions_done ?? 0} of ${d.sessions_total ?? run.sessions} sessions, ${count(d.periods_done ?? 0)} periods${d.mean_price ? `, mean price ${(+d.mean_price).toFixed(3)}` : ""}`,
          });
        else if (event.event === "started") setLive({ progress: 0, status: "running", detail: "started" });
        else if (["succeeded", "failed", "cancelled"].includes(event.event)) {
          // a success repeats the summary's highlights (a terminal event rebuilt from the database has none)
          const s = d.summary ?? {};
          const done =
            event.event === "succeeded" && typeof s.sessions === "number"
              ? `${s.sessions} of ${run.sessions} sessions${typeof s.profit_gain === "number" ? `, Δ = ${s.profit_gain.toFixed(3)}` : ""}`
              : null;
          setLive((previous) => ({
            progress: event.event === "succeeded" ? 1 : (previous?.progress ?? 0),
            status: event.event as RunStatus,
            detail: done ?? previous?.detail ?? "",
          }));
          setVersion((v) => v + 1);
        }
      },
      controller.signal,
    ).catch(setError);
    return () => controller.abort();
  }, [run?.id, run && active(run.status)]);

  useEffect(() => {
    if (run?.status !== "succeeded") return;
    api<Result>(`/results/${run.id}`).then(setResult, setResultError);
    // the per-session figures are in the run's summary.json (the database keeps the aggregates)
    api<{ sessions?: Record<string, any>[] }>(`/results/${run.id}/artifacts/summary`).then(
      (full) => setSessions(full.sessions ?? []),
      setResultError,
    );
  }, [run?.id, run?.status]);

  if (error && !run)
    return (
      <>
        <h1>Run {shortId(runId)}</h1>
        <ErrorBox error={error} what="run" />
        <p>
          <a href={href("runs")}>Back to the runs</a>
        </p>
      </>
    );
  if (!run)
    return (
      <>
        <h1>Run {shortId(runId)}</h1>
        <Loading what="the run" />
      </>
    );
  const progress = status === "succeeded" ? 1 : Math.max(run.progress, live?.progress ?? 0);
  return (
    <>
      <h1>
        Run <code>{shortId(run.id)}</code> of {run.spec?.name ?? "a scenario"}
      </h1>
      <Section title="Status" id="status">
        <div class="status-line">
          <Status status={status ?? run.status} />
          <Progress value={progress} label="run progress" />
          <span class="muted" aria-live="polite" data-testid="progress-detail">
            {live?.detail ?? ""}
          </span>
          {active(run.status) ? (
            <button type="button" disabled={run.cancel_requested} onClick={() => cancelRun(run).then(setRun, setError)}>
              {run.cancel_requested ? "Cancelling…" : "Cancel run"}
            </button>
          ) : null}
          <a class="button" href={href("compare", { runs: run.id })}>
            Compare with…
          </a>
        </div>
        <dl class="facts">
          <dt>Sessions</dt>
          <dd>{run.sessions}</dd>
          <dt>Seed</dt>
          <dd>{run.seed}</dd>
          <dt>Overrides</dt>
          <dd>{run.overrides.join(", ") || "none"}</dd>
          <dt>Scenario</dt>
          <dd>
            <a href={href("scenarios", run.scenario_id)}>{run.scenario_hash.slice(0, 12)}</a>
          </dd>
          <dt>Created</dt>
          <dd>{when(run.created_at)}</dd>
          <dt>Finished</dt>
          <dd>{when(run.finished_at)}</dd>
          <dt>Attempts</dt>
          <dd>{run.attempt}</dd>
        </dl>
        {run.error ? (
          <div class="error" role="alert">
            {run.error}
          </div>
        ) : null}
        <ErrorBox error={error} />
      </Section>
      {run.status === "succeeded" ? (
        result ? (
          <>
            <Section title="Summary" id="summary">
              <SummaryTable summary={result.summary} />
            </Section>
            <PriceChart runId={run.id} sessions={run.sessions} />
            <div class="two">
              <ImpulseChart summary={result.summary} />
              <DeltaDistribution sessions={sessions} />
            </div>
            <Downloads result={result} sessions={sessions} />
          </>
        ) : resultError ? (
          <ErrorBox error={resultError} />
        ) : (
          <Loading what="the results" />
        )
      ) : run.status === "failed" || run.status === "cancelled" ? (
        <p>This run has no results: it {run.status === "failed" ? "failed" : "was cancelled"}.</p>
      ) : (
        <p class="muted">The summary, charts and files appear here when the run succeeds.</p>
      )}
    </>
  );
}
