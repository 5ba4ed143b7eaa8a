// The algocomp dashboard: sign in with an API token, then scenarios, runs, sweeps and comparisons, each page at
// its own URL (hash routing, see router.ts).
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, getToken, setToken } from "./api";
import { ErrorBox } from "./components/common";
import { ComparePage } from "./pages/Compare";
import { RunPage } from "./pages/Run";
import { RunsPage } from "./pages/Runs";
import { EditorPage, ScenarioPage, ScenariosPage } from "./pages/Scenarios";
import { SweepPage, SweepsPage } from "./pages/Sweeps";
import { href, type Route, useRoute } from "./router";
import "./style.css";

function SignIn() {
  const [value, setValue] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api("/runs?limit=1", { token: value.trim() });
      setToken(value.trim());
    } catch (problem) {
      setError(
        problem instanceof ApiError && problem.status === 401
          ? new Error("This token is unknown, revoked or expired; ask an operator for a new one.")
          : problem,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="signin">
      <h1>algocomp dashboard</h1>
      <p>
        Sign in with your API token (an operator issues one with <code>algocomp users create NAME --team TEAM</code>).
        It is kept in this browser tab only, and sent with every request the dashboard makes.
      </p>
      <form onSubmit={submit}>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          required
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={busy || !value.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
      <ErrorBox error={error} />
    </main>
  );
}

const SECTIONS = [
  { key: "scenarios", label: "Scenarios" },
  { key: "runs", label: "Runs" },
  { key: "sweeps", label: "Sweeps" },
  { key: "compare", label: "Compare" },
];

function Page({ route }: { route: Route }) {
  const [section, id, more] = route.path;
  switch (section) {
    case "scenarios":
      if (id === "preset" && more) return <ScenarioPage preset={more} />;
      if (id) return <ScenarioPage scenarioId={id} />;
      return <ScenariosPage query={route.query} />;
    case "editor":
      return <EditorPage query={route.query} />;
    case "runs":
      return id ? <RunPage runId={id} /> : <RunsPage query={route.query} />;
    case "sweeps":
      return id ? <SweepPage sweepId={id} /> : <SweepsPage query={route.query} />;
    case "compare":
      return <ComparePage query={route.query} />;
    default:
      return <RunsPage query={route.query} />;
  }
}

function App() {
  const [token, setTokenState] = useState(getToken());
  const route = useRoute();
  const main = useRef<HTMLElement>(null);
  useEffect(() => {
    const changed = () => setTokenState(getToken());
    window.addEventListener("algocomp-token", changed);
    return () => window.removeEventListener("algocomp-token", changed);
  }, []);
  // a new page: move the focus to its heading, so keyboard and screen-reader users start there
  useEffect(() => {
    const heading = main.current?.querySelector("h1");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus({ preventScroll: false });
    }
  }, [route.path.join("/")]);
  if (!token) return <SignIn />;
  const current = route.path[0] === "editor" ? "scenarios" : route.path[0] || "runs";
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <span class="brand">algocomp</span>
        <nav aria-label="sections">
          <ul>
            {SECTIONS.map((s) => (
              <li key={s.key}>
                <a href={href(s.key)} aria-current={current === s.key ? "page" : undefined}>
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <button type="button" class="link" onClick={() => setToken(null)}>
          Sign out
        </button>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Page route={route} />
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
