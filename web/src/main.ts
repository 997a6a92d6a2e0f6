// convscope's web front end: hash routes #/runs, #/runs/{run}, #/compare?runs={run},{run} (runs side by
// side) and #/explore (the model explorer).
import "./style.css";
import { parseCompareHash } from "./compareRoute";
import { comparePage } from "./pages/compare";
import { dashboardPage } from "./pages/dashboard";
import { explorerPage } from "./pages/explorer";
import { runsPage } from "./pages/runs";

const app = document.getElementById("app")!;
const conn = document.getElementById("conn")!;
let cleanup: (() => void) | null = null;

function setConnection(up: boolean): void {
  conn.className = `conn ${up ? "up" : "down"}`;
  // (the server connection, not a run's status: "live" here read as if a finished run still trained)
  conn.textContent = up ? "connected" : "reconnecting…";
}

/** A run id from its route (as typed, where it is not valid %-encoding). */
function runOf(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route(): void {
  cleanup?.();
  document.title = "convscope";
  const hash = location.hash || "#/runs";
  const m = hash.match(/^#\/runs\/(.+)$/);
  const compared = parseCompareHash(hash);
  if (/^#\/explore(\?|$)/.test(hash)) cleanup = explorerPage(app, setConnection);
  else if (compared) cleanup = comparePage(app, compared, setConnection);
  else cleanup = m ? dashboardPage(app, runOf(m[1]), setConnection) : runsPage(app, setConnection);
}

window.addEventListener("hashchange", route);
route();
