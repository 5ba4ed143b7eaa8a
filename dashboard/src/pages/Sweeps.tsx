// Sweeps: the list; one sweep with its progress per cell (live over SSE), the Δ heatmap over the grid, the
// regulation effects with their intervals, and the metrics as CSV.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, download, follow, type MetricsCell, type Page, type Sweep, type SweepMetrics } from "../api";
import { ErrorBox, Loading, Pager, Progress, Section, Status } from "../components/common";
import { interval, jsonValue, num, shortId, when } from "../format";
import { href, navigate } from "../router";

const PAGE = 25;

export function SweepsPage({ query }: { query: URLSearchParams }) {
  const offset = Number(query.get("offset") ?? 0) || 0;
  const [page, setPage] = useState<Page<Sweep> | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    api<Page<Sweep>>(`/sweeps?limit=${PAGE}&offset=${offset}`).then(setPage, setError);
  }, [offset, tick]);
  useEffect(() => {
    if (!page?.items.some((s) => s.status === "queued" || s.status === "running")) return;
    const timer = setTimeout(() => setTick((t) => t + 1), 4000);
    return () => clearTimeout(timer);
  }, [page]);
  return (
    <>
      <h1>Sweeps</h1>
      <p>
        <a class="button" href={href("scenarios")}>
          Launch a sweep…
        </a>{" "}
        <span class="muted">(open a scenario in the editor, then give the grid)</span>
      </p>
      <ErrorBox error={error} />
      {!page ? (
        <Loading what="sweeps" />
      ) : (
        <>
          <table>
            <thead>
              <tr>
                <th scope="col">Sweep</th>
                <th scope="col">Grid</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Cells × seeds</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((s) => (
                <tr key={s.id}>
                  <th scope="row">
                    <a href={href("sweeps", s.id)}>{s.name}</a> <code class="muted">{shortId(s.id)}</code>
                  </th>
                  <td>{Object.keys(s.grid).join(" × ")}</td>
                  <td>
                    <Status status={s.status} />
                  </td>
                  <td>
                    <Progress value={s.progress} label={`progress of sweep ${s.name}`} />
                  </td>
                  <td>
                    {s.cells} × {s.seeds.length}
                  </td>
                  <td>{when(s.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {!page.items.length ? <p>No sweeps yet.</p> : null}
          <Pager
            offset={offset}
            limit={PAGE}
            total={page.total}
            onPage={(next) => navigate(href("sweeps", { offset: next }))}
          />
        </>
      )}
    </>
  );
}

/** A colour from pale to deep blue for Δ in [0, 1] (clamped), and a text colour readable on it. */
function shade(value: number | null | undefined): { background: string; color: string } {
  if (value === null || value === undefined || !Number.isFinite(value)) return { background: "#eee", color: "#333" };
  const t = Math.max(0, Math.min(1, value));
  const lightness = 95 - t * 60;
  return { background: `hsl(215, 70%, ${lightness}%)`, color: lightness < 60 ? "#fff" : "#111" };
}

function Heatmap({ metrics }: { metrics: SweepMetrics }) {
  const axes = Object.keys(metrics.grid);
  const byKey = new Map(metrics.cells.map((c) => [axes.map((a) => JSON.stringify(c.values[a])).join("|"), c]));
  const cellOf = (coords: unknown[]) => byKey.get(coords.map((v) => JSON.stringify(v)).join("|"));
  const label = (cell: MetricsCell | undefined) => {
    const m = cell?.metrics;
    if (!m) return { text: "no run yet", ci: "" };
    return { text: num(m.profit_gain_mean), ci: interval(m.profit_gain_mean_low, m.profit_gain_mean_high) };
  };
  const Cell = ({ cell }: { cell: MetricsCell | undefined }) => {
    const { text, ci } = label(cell);
    return (
      <td class="heat" style={shade(cell?.metrics?.profit_gain_mean)}>
        <span class="heat-value">{text}</span>
        {ci ? <span class="heat-ci">{ci}</span> : null}
      </td>
    );
  };
  if (axes.length === 2) {
    const [rows, cols] = axes;
    return (
      <table class="heatmap" data-testid="heatmap">
        <caption>
          Δ (mean profit gain over the cell's sessions, 95% interval) by {rows} (rows) and {cols} (columns)
        </caption>
        <thead>
          <tr>
            <th scope="col">
              {rows} \ {cols}
            </th>
            {metrics.grid[cols].map((v) => (
              <th scope="col" key={jsonValue(v)}>
                {jsonValue(v)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {metrics.grid[rows].map((r) => (
            <tr key={jsonValue(r)}>
              <th scope="row">{jsonValue(r)}</th>
              {metrics.grid[cols].map((c) => (
                <Cell key={jsonValue(c)} cell={cellOf([r, c])} />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  return (
    <table class="heatmap" data-testid="heatmap">
      <caption>Δ (mean profit gain, 95% interval) per cell</caption>
      <thead>
        <tr>
          {axes.map((a) => (
            <th scope="col" key={a}>
              {a}
            </th>
          ))}
          <th scope="col">Δ</th>
        </tr>
      </thead>
      <tbody>
        {metrics.cells.map((cell) => (
          <tr key={cell.index}>
            {axes.map((a) => (
              <th scope="row" key={a}>
                {jsonValue(cell.values[a])}
              </th>
            ))}
            <Cell cell={cell} />
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const EFFECTS: [string, string][] = [
  ["profit_gain", "Δ"],
  ["mean_price", "mean price"],
  ["consumer_surplus", "consumer surplus"],
];

function EffectBar({
  effect,
  low,
  high,
  scale,
}: {
  effect: number | null;
  low: number | null;
  high: number | null;
  scale: number;
}) {
  if (effect === null || low === null || high === null || !scale) return null;
  const at = (v: number) => `${50 + (v / scale) * 50}%`;
  return (
    <span class="effect-bar" aria-hidden="true">
      <span class="effect-zero" />
      <span
        class="effect-ci"
        style={{ left: at(Math.min(low, high)), width: `${(Math.abs(high - low) / scale) * 50}%` }}
      />
      <span class="effect-point" style={{ left: at(effect) }} />
    </span>
  );
}

function RegulationEffects({ metrics }: { metrics: SweepMetrics }) {
  const treated = metrics.cells.filter((c) => c.regulation_effect);
  const effectsOf = (cell: MetricsCell) => cell.regulation_effect?.effects ?? null;
  if (!metrics.regulation_paths.length) return null;
  return (
    <Section title="Regulation effects" id="effects">
      <p class="muted">
        Each regulated cell against the same cell without regulation ({metrics.regulation_paths.join(", ")} null),
        sessions paired by seed: mean difference and 95% bootstrap interval. The bar is centred on zero.
      </p>
      {!treated.length ? (
        <p>No effect yet: it needs a regulated cell and its unregulated twin with succeeded runs.</p>
      ) : (
        <table data-testid="effects">
          <thead>
            <tr>
              <th scope="col">Cell</th>
              {EFFECTS.map(([key, label]) => (
                <th scope="col" key={key}>
                  Effect on {label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {treated.map((cell) => (
              <tr key={cell.index}>
                <th scope="row">
                  {cell.overrides.join(", ")}
                  {cell.regulation_effect?.control_cell != null ? (
                    <span class="muted"> (against cell {cell.regulation_effect.control_cell})</span>
                  ) : null}
                </th>
                {!effectsOf(cell) ? (
                  <td colSpan={EFFECTS.length} class="muted">
                    {cell.regulation_effect?.reason ?? "not measured yet"}
                  </td>
                ) : null}
                {EFFECTS.filter(() => effectsOf(cell)).map(([key]) => {
                  const e = effectsOf(cell)![key];
                  const scale = Math.max(
                    ...treated.flatMap((c) => {
                      const x = effectsOf(c)?.[key];
                      return x ? [Math.abs(x.low ?? 0), Math.abs(x.high ?? 0)] : [0];
                    }),
                  );
                  return (
                    <td key={key} class="number">
                      {e ? (
                        <>
                          {num(e.effect)} {interval(e.low, e.high)} <span class="muted">({e.pairs} pairs)</span>
                          <EffectBar effect={e.effect} low={e.low} high={e.high} scale={scale} />
                        </>
                      ) : (
                        "–"
                      )}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

export function SweepPage({ sweepId }: { sweepId: string }) {
  const [sweep, setSweep] = useState<Sweep | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [metrics, setMetrics] = useState<SweepMetrics | null>(null);
  const [metricsNote, setMetricsNote] = useState<string>("");
  const [succeeded, setSucceeded] = useState(0);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    api<Sweep>(`/sweeps/${encodeURIComponent(sweepId)}`).then((s) => {
      setSweep(s);
      setSucceeded(s.counts.succeeded ?? 0);
    }, setError);
  }, [sweepId, version]);

  // live progress per cell
  useEffect(() => {
    if (!sweep || !(sweep.status === "queued" || sweep.status === "running")) return;
    const controller = new AbortController();
    follow(
      `/streams/sweeps/${sweep.id}`,
      (event) => {
        const d = event.data;
        if (!d || !d.cells) return;
        setSweep(
          (current) =>
            current && {
              ...current,
              status: d.status,
              counts: d.counts,
              progress: d.progress,
              per_cell: (current.per_cell ?? []).map((cell) => {
                const update = d.cells.find((c: any) => c.index === cell.index);
                return update ? { ...cell, counts: update.counts, progress: update.progress } : cell;
              }),
            },
        );
        setSucceeded(d.counts?.succeeded ?? 0);
        if (["succeeded", "failed", "cancelled"].includes(event.event)) setVersion((v) => v + 1);
      },
      controller.signal,
    ).catch(setError);
    return () => controller.abort();
  }, [sweep?.id, sweep && (sweep.status === "queued" || sweep.status === "running")]);

  // the metrics, read again whenever another run has succeeded
  useEffect(() => {
    if (!sweep || succeeded === 0) return;
    api<SweepMetrics>(`/sweeps/${sweep.id}/metrics`).then(
      (m) => {
        setMetrics(m);
        setMetricsNote("");
      },
      (problem) => setMetricsNote(problem instanceof ApiError ? problem.message : String(problem)),
    );
  }, [sweep?.id, succeeded, version]);

  if (!sweep)
    return (
      <>
        <h1>Sweep {shortId(sweepId)}</h1>
        {error ? <ErrorBox error={error} what="sweep" /> : <Loading what="the sweep" />}
      </>
    );
  const active = sweep.status === "queued" || sweep.status === "running";
  return (
    <>
      <h1>Sweep {sweep.name}</h1>
      <Section title="Progress" id="progress">
        <div class="status-line">
          <Status status={sweep.status} />
          <Progress value={sweep.progress} label="sweep progress" />
          <span class="muted">
            {Object.entries(sweep.counts)
              .filter(([, n]) => n)
              .map(([status, n]) => `${n} ${status}`)
              .join(", ")}
          </span>
          {active ? (
            <button
              type="button"
              onClick={() =>
                api<Sweep>(`/sweeps/${sweep.id}/cancel`, { method: "POST" }).then(
                  () => setVersion((v) => v + 1),
                  setError,
                )
              }
            >
              Cancel sweep
            </button>
          ) : null}
          <button
            type="button"
            disabled={!metrics}
            onClick={() =>
              download(`/sweeps/${sweep.id}/metrics`, `sweep-${sweep.id}-metrics.csv`, "text/csv").catch(setError)
            }
          >
            Download metrics (CSV)
          </button>
        </div>
        <ErrorBox error={error} />
        <table class="cells">
          <thead>
            <tr>
              <th scope="col">Cell</th>
              {Object.keys(sweep.grid).map((a) => (
                <th scope="col" key={a}>
                  {a}
                </th>
              ))}
              <th scope="col">Progress</th>
              <th scope="col">Runs</th>
            </tr>
          </thead>
          <tbody>
            {(sweep.per_cell ?? []).map((cell) => (
              <tr key={cell.index}>
                <th scope="row">{cell.index}</th>
                {Object.keys(sweep.grid).map((a) => (
                  <td key={a}>{jsonValue(cell.values[a])}</td>
                ))}
                <td>
                  <Progress value={cell.progress} label={`progress of cell ${cell.index}`} />
                </td>
                <td>
                  {(cell.run_ids ?? []).map((id, i) => (
                    <>
                      {i ? ", " : ""}
                      <a href={href("runs", id)} key={id}>
                        <code>{shortId(id)}</code>
                      </a>
                    </>
                  ))}{" "}
                  <span class="muted">
                    {Object.entries(cell.counts)
                      .filter(([, n]) => n)
                      .map(([status, n]) => `${n} ${status}`)
                      .join(", ")}
                  </span>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>
      <Section title="Δ heatmap" id="heatmap">
        {metrics ? (
          <Heatmap metrics={metrics} />
        ) : (
          <p class="muted">{metricsNote || "The heatmap fills in as the runs succeed."}</p>
        )}
      </Section>
      {metrics ? <RegulationEffects metrics={metrics} /> : null}
    </>
  );
}
