// The rows of a run's summary table, from the library's summary.json (shared by the run page and Compare).
import { interval, num, pct } from "./format";

export interface SummaryRow {
  label: string;
  value: string;
  ci?: string;
  hint?: string;
}

function avg(values: unknown): number | null {
  if (!Array.isArray(values) || !values.length) return null;
  return values.reduce((a: number, b: number) => a + b, 0) / values.length;
}

export function summaryRows(s: Record<string, any>): SummaryRow[] {
  const ci = (key: string, digits = 3) => {
    const pair = s[`${key}_ci95`];
    return Array.isArray(pair) ? interval(pair[0], pair[1], digits) : "";
  };
  const cycles = s.cycle_length_counts ? Object.entries(s.cycle_length_counts).map(([k, v]) => `${k}: ${v}`) : [];
  return [
    {
      label: "Δ (profit gain)",
      value: num(s.profit_gain),
      ci: ci("profit_gain"),
      hint: "0 = Nash profits, 1 = monopoly profits; 95% bootstrap interval over sessions",
    },
    { label: "Mean price", value: num(s.mean_price), ci: ci("mean_price") },
    {
      label: "Nash price / monopoly price",
      value: `${num(avg(s.benchmarks?.nash_price) ?? s.nash_price)} / ${num(avg(s.benchmarks?.monopoly_price) ?? s.monopoly_price)}`,
    },
    { label: "Price index", value: num(s.price_index), ci: ci("price_index"), hint: "0 = Nash, 1 = monopoly" },
    { label: "Consumer surplus loss", value: num(s.consumer_surplus_loss, 4), ci: ci("consumer_surplus_loss", 4) },
    {
      label: "Consumer surplus loss index",
      value: num(s.consumer_surplus_loss_index),
      ci: ci("consumer_surplus_loss_index"),
      hint: "share of the Nash-to-monopoly loss",
    },
    { label: "Sessions converged", value: pct(s.converged_share) },
    {
      label: "Mean convergence period",
      value: s.mean_convergence_period == null ? "–" : Math.round(s.mean_convergence_period).toLocaleString("en-US"),
    },
    {
      label: "Punishment after a deviation",
      value: pct(s.punishment_share),
      hint: "share of sessions whose rival cut its price after the forced deviation",
    },
    { label: "Mean punishment length", value: num(s.mean_punishment_length, 1) },
    { label: "Deviation pays", value: pct(s.deviation_pays_share) },
    { label: "Cycle lengths (sessions)", value: cycles.join(", ") || "–" },
    {
      label: "Sessions",
      value: String(Array.isArray(s.sessions) ? s.sessions.length : (s.sessions ?? s.sessions_requested ?? "–")),
    },
  ];
}
