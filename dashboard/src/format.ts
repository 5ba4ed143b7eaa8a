// How numbers, dates and ids are written on the pages.

export function num(value: number | null | undefined, digits = 3): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return value.toFixed(digits);
}

export function pct(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "–";
  return (value * 100).toFixed(digits) + "%";
}

export function interval(low: number | null | undefined, high: number | null | undefined, digits = 3): string {
  if (low === null || low === undefined || high === null || high === undefined) return "";
  return `[${num(low, digits)}, ${num(high, digits)}]`;
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function count(value: number): string {
  return value.toLocaleString("en-US");
}

export function jsonValue(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}
