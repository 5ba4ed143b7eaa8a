// Two or more runs side by side: their summaries in one table, and their price paths (each run's mean over firms
// and sessions) on one chart against the Nash and monopoly prices, e.g. with and without a price cap.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, type Page, type PricePaths, type Result, type Run } from "../api";
import { Chart, type Line, PALETTE } from "../components/Chart";
import { ErrorBox, Loading, Section } from "../components/common";
import { shortId } from "../format";
import { href, navigate } from "../router";
import { summaryRows } from "../summary";
import { benchmarkLines } from "./Run";

interface Loaded {
  run: Run;
  result: Result | null;
  paths: PricePaths | null;
  error: unknown;
}

async function load(id: string): Promise<Loaded> {
  let run: Run;
  try {
    run = await api<Run>(`/runs/${encodeURIComponent(id)}`);
  } catch (error) {
    return { run: { id } as Run, result: null, paths: null, error };
  }
  if (run.status !== "succeeded")
    return {
      run,
      result: null,
      paths: null,
      error: new Error(`run ${shortId(id)} is ${run.status}: it has no results to compare`),
    };
  try {
    const [result, paths] = await Promise.all([
      api<Result>(`/results/${id}`),
      api<PricePaths>(`/results/${id}/prices?points=300`),
    ]);
    return { run, result, paths, error: null };
  } catch (error) {
    return { run, result: null, paths: null, error };
  }
}

function label(run: Run): string {
  const name = run.scenario_name ?? run.spec?.name;
  return `${shortId(run.id)}${name ? ` ${name}` : ""}${run.overrides?.length ? ` (${run.overrides.join(", ")})` : ""}`;
}

export function ComparePage({ query }: { query: URLSearchParams }) {
  const ids = (query.get("runs") ?? "").split(",").filter(Boolean);
  const [loaded, setLoaded] = useState<Loaded[] | null>(null);
  const [recent, setRecent] = useState<Run[]>([]);
  const [adding, setAdding] = useState("");
  useEffect(() => {
    setLoaded(null);
    Promise.all(ids.map(load)).then(setLoaded);
  }, [ids.join(",")]);
  useEffect(() => {
    api<Page<Run>>("/runs?status=succeeded&limit=50").then(
      (p) => setRecent(p.items),
      () => undefined,
    );
  }, []);

  const ok = (loaded ?? []).filter((l) => l.result && l.paths);
  const chart = useMemo(() => {
    if (!ok.length) return null;
    const xs = [...new Set(ok.flatMap((l) => l.paths!.period))].sort((a, b) => a - b);
    const position = new Map(xs.map((x, i) => [x, i]));
    const lines: Line[] = ok.map((l, i) => {
      const values: (number | null)[] = xs.map(() => null);
      l.paths!.period.forEach((x, j) => {
        const prices = l.paths!.price.map((firm) => firm[j]).filter((v): v is number => v !== null);
        values[position.get(x)!] = prices.length ? prices.reduce((a, b) => a + b, 0) / prices.length : null;
      });
      return { label: `run ${label(l.run)}`, values, color: PALETTE[i % PALETTE.length] };
    });
    const first = ok[0].paths!;
    return { x: xs, lines: [...lines, ...benchmarkLines(xs, first.nash_price, first.monopoly_price)] };
  }, [loaded]);

  const setIds = (next: string[]) => navigate(href("compare", { runs: next.join(",") }));
  return (
    <>
      <h1>Compare runs</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          if (adding && !ids.includes(adding)) setIds([...ids, adding]);
          setAdding("");
        }}
      >
        <label for="add-run">Add a succeeded run</label>
        <select id="add-run" value={adding} onChange={(e) => setAdding((e.target as HTMLSelectElement).value)}>
          <option value="">choose…</option>
          {recent
            .filter((r) => !ids.includes(r.id))
            .map((r) => (
              <option value={r.id} key={r.id}>
                {label(r)} · {r.sessions} sessions · seed {r.seed}
              </option>
            ))}
        </select>
        <button type="submit" disabled={!adding}>
          Add
        </button>
        <span class="muted">
          or tick runs in the <a href={href("runs")}>runs list</a> and press Compare.
        </span>
      </form>
      {ids.length < 2 ? <p>Choose at least two runs to compare.</p> : null}
      {!loaded ? (
        ids.length ? (
          <Loading what="the runs" />
        ) : null
      ) : (
        <>
          {loaded
            .filter((l) => l.error)
            .map((l) => (
              <ErrorBox key={l.run.id} error={l.error} what="run" />
            ))}
          {ok.length ? (
            <Section title="Summaries" id="summaries">
              <div class="scroll">
                <table class="summary compare" data-testid="compare-table">
                  <thead>
                    <tr>
                      <th scope="col">Measure</th>
                      {ok.map((l, i) => (
                        <th scope="col" key={l.run.id}>
                          <span class="swatch" style={{ background: PALETTE[i % PALETTE.length] }} />
                          <a href={href("runs", l.run.id)}>{label(l.run)}</a>{" "}
                          <button
                            type="button"
                            class="small"
                            aria-label={`remove run ${shortId(l.run.id)} from the comparison`}
                            onClick={() => setIds(ids.filter((x) => x !== l.run.id))}
                          >
                            ✕
                          </button>
                        </th>
                      ))}
                    </tr>
                  </thead>
                  <tbody>
                    {summaryRows(ok[0].result!.summary).map((row, r) => (
                      <tr key={row.label}>
                        <th scope="row" title={row.hint}>
                          {row.label}
                        </th>
                        {ok.map((l) => {
                          const cell = summaryRows(l.result!.summary)[r];
                          return (
                            <td class="number" key={l.run.id}>
                              {cell.value} {cell.ci ? <span class="muted">{cell.ci}</span> : null}
                            </td>
                          );
                        })}
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </Section>
          ) : null}
          {chart ? (
            <Section title="Price paths" id="paths">
              <p class="muted">Each run's price averaged over its firms and sessions, by period.</p>
              <Chart
                x={chart.x}
                lines={chart.lines}
                xLabel="period"
                yLabel="price"
                testId="compare-chart"
                label={`Mean price by period of ${ok.length} runs, against the Nash and monopoly prices`}
              />
            </Section>
          ) : null}
        </>
      )}
    </>
  );
}
