// The popover's only way to the engine: typed calls to the app's IPC commands.
import { invoke } from "@tauri-apps/api/core";

export type Icon =
  | "signed_out"
  | "approval_waiting"
  | "expiring_soon"
  | "access_open"
  | "waiting_for_approval"
  | "idle";

export interface AppState {
  signed_in_as: string | null;
  demo: boolean;
  demo_users: string[];
  icon: Icon;
  tooltip: string;
  targets: string[];
}

/** How a command failed: a kind to switch on, a stable code and a message to show. */
export interface CommandError {
  kind:
    | "sign_in"
    | "denied"
    | "policy"
    | "unavailable"
    | "not_found"
    | "conflict"
    | "not_available"
    | "other";
  data: { code: string; message: string };
}

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

export function appState(): Promise<AppState> {
  return invoke<AppState>("app_state");
}

export function signInDemo(upn: string): Promise<AppState> {
  return invoke<AppState>("sign_in_demo", { upn });
}

export function signOut(): Promise<AppState> {
  return invoke<AppState>("sign_out");
}
