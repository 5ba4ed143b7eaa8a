// The dashboard's one door to the API: every request carries the user's token (kept in sessionStorage, so it
// lasts as long as the browser tab and is never written to disk by the page), and every error the API answers
// ({"error": {"code", "message", "field"?}}) becomes an ApiError the pages show as it is.

const TOKEN_KEY = "algocomp.token";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  window.dispatchEvent(new Event("algocomp-token"));
}

function headers(extra: Record<string, string> = {}, token = getToken()): Record<string, string> {
  return { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...extra };
}

async function failure(response: Response, signOutOn401 = true): Promise<ApiError> {
  let code = "http_" + response.status;
  let message = `${response.status} ${response.statusText}`;
  let field: string | undefined;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      field = body.error.field ?? undefined;
    }
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 401 && signOutOn401) setToken(null); // the token is unknown, revoked or expired: sign in again
  return new ApiError(response.status, code, message, field);
}

export interface RequestOptions {
  method?: "GET" | "POST";
  body?: unknown;
  signal?: AbortSignal;
  idempotencyKey?: string;
  /** a token to try instead of the session's (the sign-in page checks one before keeping it) */
  token?: string;
}

export async function api<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const extra: Record<string, string> = { Accept: "application/json" };
  if (options.body !== undefined) extra["Content-Type"] = "application/json";
  if (options.idempotencyKey) extra["Idempotency-Key"] = options.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(path, {
      method: options.method ?? "GET",
      headers: headers(extra, options.token ?? getToken()),
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (error) {
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, "network", "the API did not answer: is the stack running?");
  }
  if (!response.ok) throw await failure(response, options.token === undefined);
  return (await response.json()) as T;
}

/** A file through the API (with the token), saved by the browser under `filename`. */
export async function download(path: string, filename: string, accept = "*/*"): Promise<void> {
  const response = await fetch(path, { headers: headers({ Accept: accept }) });
  if (!response.ok) throw await failure(response);
  saveBlob(await response.blob(), filename);
}

export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface StreamEvent {
  event: string;
  data: any;
  id?: string;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/**
 * Follow a Server-Sent Events stream of the API with fetch (an EventSource cannot send the Authorization header).
 * Reconnects after a dropped connection with Last-Event-ID, so no event is missed, until a terminal event
 * arrives, the stream ends after one, or `signal` aborts. Resolves when the stream is over.
 */
export async function follow(path: string, onEvent: (event: StreamEvent) => void, signal: AbortSignal): Promise<void> {
  let lastId: string | undefined;
  let pause = 500;
  while (!signal.aborted) {
    let terminal = false;
    try {
      const response = await fetch(path, {
        headers: headers({ Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) }),
        signal,
      });
      if (!response.ok) throw await failure(response);
      const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end: number;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = parseBlock(block);
          if (!message) continue;
          if (message.id) lastId = message.id;
          pause = 500;
          onEvent(message);
          if (TERMINAL.has(message.event)) terminal = true;
        }
      }
      if (terminal) return;
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.status !== 503 && error.status !== 0) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
    pause = Math.min(pause * 2, 10_000);
  }
}

function parseBlock(block: string): StreamEvent | null {
  let event = "message";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a keep-alive comment
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") event = value;
    else if (name === "id") id = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return null;
  let parsed: any = data.join("\n");
  try {
    parsed = JSON.parse(parsed);
  } catch {
    // plain text data
  }
  return { event, data: parsed, id };
}

// ---------------------------------------------------------------------------------------------- the API's shapes

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "cancelled";

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface Run {
  id: string;
  scenario_id: string;
  scenario_hash: string;
  scenario_name: string | null;
  status: RunStatus;
  seed: number;
  sessions: number;
  overrides: string[];
  progress: number;
  sessions_done: number;
  periods_done: number;
  attempt: number;
  cancel_requested: boolean;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  spec?: Record<string, any>;
}

export interface Artifact {
  key: string;
  url: string;
  presigned_url: string | null;
  content_type: string;
}

export interface Result {
  run_id: string;
  summary: Record<string, any>;
  artifacts: Record<string, Artifact>;
}

export interface PricePaths {
  session: number | null;
  sessions: number;
  n_firms: number;
  period: number[];
  price: (number | null)[][];
  nash_price: (number | null)[];
  monopoly_price: (number | null)[];
  tail: { period: number[]; price: (number | null)[][] } | null;
}

export interface Preset {
  name: string;
  description: string;
}

export interface StoredScenario {
  id: string;
  name: string;
  scenario_hash: string;
  spec: Record<string, any>;
  created_at: string;
}

export interface Checked {
  name: string;
  scenario_hash: string;
  spec: Record<string, any>;
}

export interface SweepCell {
  index: number;
  overrides: string[];
  values: Record<string, any>;
  counts: Record<string, number>;
  progress: number;
  run_ids?: string[];
}

export interface Sweep {
  id: string;
  name: string;
  status: RunStatus;
  grid: Record<string, any[]>;
  seeds: number[];
  sessions: number;
  cells: number;
  runs: number;
  counts: Record<string, number>;
  progress: number;
  cancel_requested: boolean;
  created_at: string;
  finished_at: string | null;
  per_cell?: SweepCell[];
  files?: Record<string, { url: string; presigned_url: string }>;
}

export interface Interval {
  effect: number | null;
  low: number | null;
  high: number | null;
  pairs: number;
}

export interface MetricsCell {
  index: number;
  overrides: string[];
  values: Record<string, any>;
  runs: number;
  runs_succeeded: number;
  metrics: Record<string, number | null> | null;
  regulation_effect: {
    control_cell: number | null;
    effects: Record<string, Interval> | null;
    reason?: string;
  } | null;
}

export interface SweepMetrics {
  status: RunStatus;
  grid: Record<string, any[]>;
  regulation_paths: string[];
  cells: MetricsCell[];
}
