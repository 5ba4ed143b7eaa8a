// Hash routing: every page has its own URL (#/runs/ID, #/sweeps?offset=50, ...), which can be shared within the
// team, bookmarked and reloaded; the server only ever serves /.
import { useEffect, useState } from "preact/hooks";

export interface Route {
  path: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?", 2);
  return { path: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const changed = () => setRoute(parseHash(location.hash));
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return route;
}

/** The hash of a page: href("runs", id) -> "#/runs/ID"; query values that are empty are left out. */
export function href(...parts: (string | Record<string, string | number | undefined | null>)[]): string {
  const path: string[] = [];
  const query = new URLSearchParams();
  for (const part of parts) {
    if (typeof part === "string") path.push(encodeURIComponent(part));
    else
      for (const [key, value] of Object.entries(part))
        if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
  }
  const search = query.toString();
  return "#/" + path.join("/") + (search ? "?" + search : "");
}

export function navigate(target: string): void {
  location.hash = target;
}
