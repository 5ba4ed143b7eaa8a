// Small pieces every page uses: the progress bar, status badges, error boxes, the pager.
import type { ComponentChildren } from "preact";
import { ApiError, type RunStatus } from "../api";
import { count, pct } from "../format";

export function Progress({ value, label }: { value: number; label: string }) {
  const share = Math.max(0, Math.min(1, value || 0));
  return (
    <div class="progress">
      <div
        class="progress-track"
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={Math.round(share * 100)}
      >
        <div class="progress-fill" style={{ width: `${share * 100}%` }} />
      </div>
      <span class="progress-text">{pct(share)}</span>
    </div>
  );
}

export function Status({ status }: { status: RunStatus | string }) {
  return <span class={`status status-${status}`}>{status}</span>;
}

export function ErrorBox({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  if (error instanceof ApiError && error.status === 404)
    return (
      <div class="error not-found" role="alert">
        <strong>Not found.</strong> {what ? `No ${what} with this id is visible to your team. ` : ""}
        {error.message}
      </div>
    );
  const message = error instanceof Error ? error.message : String(error);
  const field = error instanceof ApiError && error.field ? error.field : null;
  return (
    <div class="error" role="alert">
      {field ? (
        <>
          <strong>{field}</strong>:{" "}
        </>
      ) : null}
      {message}
    </div>
  );
}

export function Pager({
  offset,
  limit,
  total,
  onPage,
}: {
  offset: number;
  limit: number;
  total: number;
  onPage: (offset: number) => void;
}) {
  const last = Math.min(offset + limit, total);
  return (
    <nav class="pager" aria-label="pages">
      <button type="button" disabled={offset <= 0} onClick={() => onPage(Math.max(0, offset - limit))}>
        ← Previous
      </button>
      <span aria-live="polite">{total ? `${count(offset + 1)}–${count(last)} of ${count(total)}` : "none"}</span>
      <button type="button" disabled={last >= total} onClick={() => onPage(offset + limit)}>
        Next →
      </button>
    </nav>
  );
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section aria-labelledby={id ? `${id}-title` : undefined} class="card">
      <h2 id={id ? `${id}-title` : undefined}>{title}</h2>
      {children}
    </section>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="loading" role="status">
      Loading {what}…
    </p>
  );
}
