// Presets and stored scenarios; one scenario read in full; the editor, which validates as you type (through
// POST /scenarios/check, so the errors are the API's own, naming the field) and launches a run or a sweep.
import { useEffect, useMemo, useState } from "preact/hooks";
import { api, ApiError, type Checked, type Page, type Preset, type StoredScenario } from "../api";
import { ErrorBox, Loading, Pager, Section } from "../components/common";
import { shortId, when } from "../format";
import { href, navigate } from "../router";

const PAGE = 20;

export function ScenariosPage({ query }: { query: URLSearchParams }) {
  const offset = Number(query.get("offset") ?? 0) || 0;
  const [presets, setPresets] = useState<Preset[] | null>(null);
  const [stored, setStored] = useState<Page<StoredScenario> | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<Preset[]>("/scenarios/presets").then(setPresets, setError);
  }, []);
  useEffect(() => {
    api<Page<StoredScenario>>(`/scenarios?limit=${PAGE}&offset=${offset}`).then(setStored, setError);
  }, [offset]);
  return (
    <>
      <h1>Scenarios</h1>
      <ErrorBox error={error} />
      <Section title="Built-in presets" id="presets">
        {presets ? (
          <table>
            <thead>
              <tr>
                <th scope="col">Preset</th>
                <th scope="col">Description</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {presets.map((p) => (
                <tr key={p.name}>
                  <th scope="row" class="name">
                    <a href={href("scenarios", "preset", p.name)}>{p.name}</a>
                  </th>
                  <td>{p.description}</td>
                  <td class="actions">
                    <a
                      class="button"
                      href={href("editor", { preset: p.name })}
                      aria-label={`Open ${p.name} in the editor`}
                    >
                      Open in editor
                    </a>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : (
          <Loading what="presets" />
        )}
      </Section>
      <Section title="Stored scenarios of your team" id="stored">
        {stored ? (
          <>
            <table>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Fingerprint</th>
                  <th scope="col">Stored</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {stored.items.map((s) => (
                  <tr key={s.id}>
                    <th scope="row">
                      <a href={href("scenarios", s.id)}>{s.name}</a>
                    </th>
                    <td>
                      <code>{s.scenario_hash.slice(0, 12)}</code>
                    </td>
                    <td>{when(s.created_at)}</td>
                    <td class="actions">
                      <a class="button" href={href("editor", { scenario: s.id })}>
                        Open in editor
                      </a>{" "}
                      <a href={href("runs", { scenario_id: s.id })}>Runs</a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager
              offset={offset}
              limit={PAGE}
              total={stored.total}
              onPage={(next) => navigate(href("scenarios", { offset: next }))}
            />
          </>
        ) : (
          <Loading what="stored scenarios" />
        )}
      </Section>
    </>
  );
}

async function loadSpec(preset?: string | null, scenarioId?: string | null): Promise<{ name: string; spec: any }> {
  if (preset) {
    const checked = await api<Checked>("/scenarios/check", { method: "POST", body: { preset } });
    return { name: checked.name, spec: checked.spec };
  }
  const stored = await api<StoredScenario>(`/scenarios/${encodeURIComponent(scenarioId ?? "")}`);
  return { name: stored.name, spec: stored.spec };
}

export function ScenarioPage({ preset, scenarioId }: { preset?: string; scenarioId?: string }) {
  const [loaded, setLoaded] = useState<{ name: string; spec: any } | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    setLoaded(null);
    setError(null);
    loadSpec(preset, scenarioId).then(setLoaded, setError);
  }, [preset, scenarioId]);
  const editor = preset ? href("editor", { preset }) : href("editor", { scenario: scenarioId });
  return (
    <>
      <h1>{preset ? `Preset ${preset}` : `Scenario ${loaded?.name ?? shortId(scenarioId ?? "")}`}</h1>
      <ErrorBox error={error} what="scenario" />
      {loaded ? (
        <>
          <p class="toolbar">
            <a class="button primary" href={editor}>
              Copy into the editor
            </a>
            {scenarioId ? <a href={href("runs", { scenario_id: scenarioId })}>Runs of this scenario</a> : null}
          </p>
          <Section title="Full specification (every default spelt out)" id="spec">
            <pre class="spec" tabIndex={0}>
              {JSON.stringify(loaded.spec, null, 2)}
            </pre>
          </Section>
        </>
      ) : error ? null : (
        <Loading what="the scenario" />
      )}
    </>
  );
}

interface FieldError {
  field: string | null;
  message: string;
}

function lines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Where an error of the API belongs in the form: an override's path, sessions, seed, grid, or the document. */
function placeOf(
  field: string | null,
  overrides: string[],
): "overrides" | "sessions" | "seed" | "grid" | "seeds" | "document" {
  if (!field) return "document";
  if (field === "sessions" || field === "seed" || field === "seeds") return field;
  if (field.startsWith("overrides")) return "overrides";
  if (field.startsWith("grid")) return "grid";
  const paths = overrides.map((o) => o.split("=", 1)[0].trim());
  if (paths.some((p) => p && (field === p || field.startsWith(p + ".") || p.startsWith(field + "."))))
    return "overrides";
  return "document";
}

function parseGrid(text: string): { grid: Record<string, unknown[]>; error: string | null } {
  const grid: Record<string, unknown[]> = {};
  const rows = lines(text);
  for (const [index, row] of rows.entries()) {
    const equals = row.indexOf("=");
    if (equals <= 0)
      return { grid, error: `line ${index + 1}: write PATH = [VALUE, ...], e.g. agents.alpha = [0.05, 0.15]` };
    const path = row.slice(0, equals).trim();
    try {
      const values = JSON.parse(row.slice(equals + 1));
      if (!Array.isArray(values) || !values.length) throw new Error("not a list");
      grid[path] = values;
    } catch {
      return {
        grid,
        error: `line ${index + 1} (${path}): the values must be a JSON list, e.g. [0.05, 0.15] or [null, {"basis": "absolute", "value": 1.75}]`,
      };
    }
  }
  if (!rows.length) return { grid, error: "give at least one axis" };
  return { grid, error: null };
}

function parseSeeds(text: string): number[] | null {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (!parts.length) return null;
  const seeds = parts.map(Number);
  return seeds.every((s) => Number.isInteger(s) && s >= 0) ? seeds : null;
}

function FieldMessage({ id, error }: { id: string; error: FieldError | null }) {
  return (
    <p id={id} class={error ? "field-error" : "field-ok"} role={error ? "alert" : undefined}>
      {error ? (
        <>
          {error.field ? <strong>{error.field}</strong> : null}
          {error.field ? ": " : ""}
          {error.message}
        </>
      ) : null}
    </p>
  );
}

export function EditorPage({ query }: { query: URLSearchParams }) {
  const preset = query.get("preset");
  const scenarioId = query.get("scenario");
  const [text, setText] = useState("");
  const [source, setSource] = useState<string>("");
  const [loadError, setLoadError] = useState<unknown>(null);
  const [sessions, setSessions] = useState("");
  const [seed, setSeed] = useState("");
  const [overrides, setOverrides] = useState("");
  const [gridText, setGridText] = useState("");
  const [seedsText, setSeedsText] = useState("0");
  const [checked, setChecked] = useState<Checked | null>(null);
  const [problem, setProblem] = useState<FieldError | null>(null);
  const [checking, setChecking] = useState(false);
  const [launchError, setLaunchError] = useState<FieldError | null>(null);
  const [launching, setLaunching] = useState(false);

  useEffect(() => {
    if (!preset && !scenarioId) {
      setText(JSON.stringify({ name: "my-scenario", market: { n_firms: 2 }, sessions: 4 }, null, 2));
      setSource("a new scenario");
      return;
    }
    loadSpec(preset, scenarioId).then(({ name, spec }) => {
      setText(JSON.stringify(spec, null, 2));
      setSource(preset ? `preset ${preset}` : `stored scenario ${name}`);
    }, setLoadError);
  }, [preset, scenarioId]);

  const overrideList = useMemo(() => lines(overrides), [overrides]);
  const parsed = useMemo((): { doc: any; error: FieldError | null } => {
    if (!text.trim()) return { doc: null, error: null };
    try {
      const doc = JSON.parse(text);
      if (!doc || typeof doc !== "object" || Array.isArray(doc))
        return { doc: null, error: { field: null, message: "the scenario must be a JSON object" } };
      return { doc, error: null };
    } catch (error) {
      return { doc: null, error: { field: null, message: `not valid JSON: ${(error as Error).message}` } };
    }
  }, [text]);
  const numberOf = (value: string) => (value.trim() === "" ? undefined : Number(value));

  // validation as you type: the API's own check of the document and the run's changes, 350 ms after the last key
  useEffect(() => {
    if (!parsed.doc) {
      setChecked(null);
      setProblem(parsed.error);
      return;
    }
    const controller = new AbortController();
    const timer = setTimeout(async () => {
      setChecking(true);
      try {
        const result = await api<Checked>("/scenarios/check", {
          method: "POST",
          body: { scenario: parsed.doc, overrides: overrideList, sessions: numberOf(sessions), seed: numberOf(seed) },
          signal: controller.signal,
        });
        setChecked(result);
        setProblem(null);
      } catch (error) {
        if (controller.signal.aborted) return;
        setChecked(null);
        setProblem(
          error instanceof ApiError
            ? { field: error.field ?? null, message: error.message }
            : { field: null, message: String(error) },
        );
      } finally {
        if (!controller.signal.aborted) setChecking(false);
      }
    }, 350);
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [parsed, overrideList, sessions, seed]);

  const grid = useMemo(() => parseGrid(gridText), [gridText]);
  const sweepSeeds = useMemo(() => parseSeeds(seedsText), [seedsText]);
  const place = problem ? placeOf(problem.field, overrideList) : null;
  const launchPlace = launchError ? placeOf(launchError.field, overrideList) : null;
  const errorAt = (where: string): FieldError | null =>
    launchPlace === where ? launchError : place === where ? problem : null;

  const launch = async (kind: "run" | "sweep") => {
    setLaunchError(null);
    if (!parsed.doc) return;
    setLaunching(true);
    try {
      if (kind === "run") {
        const accepted = await api<{ id: string }>("/runs", {
          method: "POST",
          idempotencyKey: crypto.randomUUID(),
          body: { scenario: parsed.doc, overrides: overrideList, sessions: numberOf(sessions), seed: numberOf(seed) },
        });
        navigate(href("runs", accepted.id));
      } else {
        if (grid.error) throw new ApiError(422, "invalid_request", grid.error, "grid");
        if (!sweepSeeds) throw new ApiError(422, "invalid_request", "seeds: whole numbers ≥ 0, e.g. 0, 1", "seeds");
        const accepted = await api<{ id: string }>("/sweeps", {
          method: "POST",
          idempotencyKey: crypto.randomUUID(),
          body: {
            scenario: parsed.doc,
            overrides: overrideList,
            sessions: numberOf(sessions),
            grid: grid.grid,
            seeds: sweepSeeds,
          },
        });
        navigate(href("sweeps", accepted.id));
      }
    } catch (error) {
      setLaunchError(
        error instanceof ApiError
          ? { field: error.field ?? null, message: error.message }
          : { field: null, message: String(error) },
      );
    } finally {
      setLaunching(false);
    }
  };

  return (
    <>
      <h1>Scenario editor</h1>
      <ErrorBox error={loadError} what="scenario" />
      <p>
        Editing a copy of {source || "…"}. The document is checked by the API as you type (nothing is stored until you
        launch); the error names the field at fault. Field reference: <code>docs/scenario-format.md</code>.
      </p>
      <div class="editor-grid">
        <Section title="Scenario (JSON)" id="document">
          <label for="document-text" class="sr-only">
            Scenario document (JSON)
          </label>
          <textarea
            id="document-text"
            class="code"
            spellcheck={false}
            rows={28}
            value={text}
            aria-describedby="document-status"
            aria-invalid={place === "document" ? "true" : undefined}
            onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          />
          <div id="document-status" aria-live="polite" class="check-status" data-testid="check-status">
            {checking ? (
              <span class="muted">checking…</span>
            ) : checked ? (
              <span class="ok">
                ✓ valid: <strong>{checked.name}</strong>, fingerprint <code>{checked.scenario_hash.slice(0, 12)}</code>
              </span>
            ) : null}
            <FieldMessage id="document-error" error={errorAt("document")} />
          </div>
        </Section>
        <div>
          <Section title="Launch a run" id="run">
            <form
              onSubmit={(e) => {
                e.preventDefault();
                launch("run");
              }}
            >
              <div class="row">
                <div>
                  <label for="sessions">Sessions</label>
                  <input
                    id="sessions"
                    type="number"
                    min={1}
                    inputMode="numeric"
                    placeholder="the scenario's"
                    value={sessions}
                    aria-describedby="sessions-error"
                    onInput={(e) => setSessions((e.target as HTMLInputElement).value)}
                  />
                  <FieldMessage id="sessions-error" error={errorAt("sessions")} />
                </div>
                <div>
                  <label for="seed">Seed</label>
                  <input
                    id="seed"
                    type="number"
                    min={0}
                    inputMode="numeric"
                    placeholder="the scenario's"
                    value={seed}
                    aria-describedby="seed-error"
                    onInput={(e) => setSeed((e.target as HTMLInputElement).value)}
                  />
                  <FieldMessage id="seed-error" error={errorAt("seed")} />
                </div>
              </div>
              <label for="overrides">Overrides (one PATH=VALUE per line)</label>
              <textarea
                id="overrides"
                class="code"
                rows={4}
                spellcheck={false}
                placeholder={"horizon.max_periods=20000\nagents.alpha=0.1"}
                value={overrides}
                aria-describedby="overrides-error"
                aria-invalid={place === "overrides" ? "true" : undefined}
                onInput={(e) => setOverrides((e.target as HTMLTextAreaElement).value)}
              />
              <FieldMessage id="overrides-error" error={errorAt("overrides")} />
              <button type="submit" class="primary" disabled={launching || !parsed.doc}>
                Launch run
              </button>
            </form>
          </Section>
          <Section title="Launch a sweep" id="sweep">
            <form
              onSubmit={(e) => {
                e.preventDefault();
                launch("sweep");
              }}
            >
              <p class="muted">A grid of runs of this document with the overrides and sessions above.</p>
              <label for="grid">Grid axes (one PATH = [VALUES] per line)</label>
              <textarea
                id="grid"
                class="code"
                rows={3}
                spellcheck={false}
                placeholder={
                  'agents.alpha = [0.05, 0.15]\nregulation.price_cap = [null, {"basis": "absolute", "value": 1.75}]'
                }
                value={gridText}
                aria-describedby="grid-error"
                onInput={(e) => setGridText((e.target as HTMLTextAreaElement).value)}
              />
              <FieldMessage id="grid-error" error={errorAt("grid")} />
              <label for="sweep-seeds">Seeds per cell (comma-separated)</label>
              <input
                id="sweep-seeds"
                value={seedsText}
                aria-describedby="seeds-error"
                onInput={(e) => setSeedsText((e.target as HTMLInputElement).value)}
              />
              <FieldMessage id="seeds-error" error={errorAt("seeds")} />
              <button type="submit" disabled={launching || !parsed.doc}>
                Launch sweep
              </button>
            </form>
          </Section>
        </div>
      </div>
    </>
  );
}
