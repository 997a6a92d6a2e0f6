// convscope's web front end: hash routes #/runs, #/runs/{run} and #/explore (the model explorer).
import "./style.css";
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

function route(): void {
  cleanup?.();
  const hash = location.hash || "#/runs";
  const m = hash.match(/^#\/runs\/(.+)$/);
  if (/^#\/explore(\?|$)/.test(hash)) cleanup = explorerPage(app, setConnection);
  else cleanup = m ? dashboardPage(app, decodeURIComponent(m[1]), setConnection) : runsPage(app, setConnection);
}

window.addEventListener("hashchange", route);
route();
