// The popover's only way to the engine: the generated, typed bindings to the app's IPC
// commands and events, and how a failure is told to the user.
import { listen } from "@tauri-apps/api/event";
import type { CommandError, Elevation, Events } from "./bindings";

export * from "./bindings";

export function isCommandError(e: unknown): e is CommandError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as CommandError).kind === "string" &&
    typeof (e as CommandError).data?.message === "string"
  );
}

/** The message to show for any failure. */
export function describe(e: unknown): string {
  return isCommandError(e) ? e.data.message : String(e);
}

/** Listens to one of the app's events; answers how to stop. */
export function on<K extends keyof Events>(name: K, handler: (payload: Events[K]) => void): Promise<() => void> {
  return listen<Events[K]>(name, (e) => handler(e.payload));
}

/** "1 h 05 min", "4 min 09 s", "ended": what is left until `end`, `now` being ARM's time. */
export function left(end: string | null, nowMs: number): string {
  if (!end) return "";
  const ms = Date.parse(end) - nowMs;
  if (!(ms > 0)) return "ended";
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  if (h > 0) return `${h} h ${two(m)} min`;
  return `${m} min ${two(sec)} s`;
}

/** A VM's name: the last segment of its resource id (`…/virtualMachines/NAME`), or the name
 *  as it is. */
export function vmName(vm: string): string {
  const match = /\/virtualMachines\/([^/]+)\/?$/i.exec(vm);
  return match ? match[1] : vm;
}

/** Whether another of `all` has the name of `t` (Azure compares VM names without case):
 *  then the name alone does not say which VM is meant. */
export function nameShared(t: { vm: string; vm_id: string }, all: Array<{ vm: string; vm_id: string }>): boolean {
  const name = t.vm.toLowerCase();
  return all.some((o) => o.vm_id.toLowerCase() !== t.vm_id.toLowerCase() && o.vm.toLowerCase() === name);
}

/** The subscription id in an ARM id (`/subscriptions/ID/…`). */
export function subscriptionOf(id: string): string {
  return /^\/subscriptions\/([^/]+)/i.exec(id)?.[1] ?? "";
}

/** A duration in minutes as the short form the engine reads ("1h30m"). */
export function shortDuration(minutes: number): string {
  const h = Math.floor(minutes / 60);
  const m = minutes % 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}` || "0m";
}

/** Where a scope is, as people name it: its resource group, else its last part
 *  (a subscription's id, a management group's name). */
export function shortScope(scope: string): string {
  const rg = /\/resourceGroups\/([^/]+)/i.exec(scope)?.[1];
  return rg || scope.split("/").filter(Boolean).at(-1) || scope;
}

/** How the app's commands name a role, a group membership or an Entra role: a group by
 *  `group:NAME` and an Entra role by `entra:NAME`, so that a role of the same name is never
 *  taken for it. */
export function elevationName(kind: Elevation, name: string): string {
  if (kind === "group") return `group:${name}`;
  if (kind === "entra_role") return `entra:${name}`;
  return name;
}

/** "14:05": a time of day on the local clock, rounded up to the minute, so that a time
 *  something becomes possible is never shown before it does. */
export function clockTime(ms: number): string {
  const d = new Date(Math.ceil(ms / 60_000) * 60_000);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}`;
}
