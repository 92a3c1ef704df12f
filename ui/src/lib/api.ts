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

export function appState(): Promise<AppState> {
  return invoke<AppState>("app_state");
}

export function signInDemo(upn: string): Promise<AppState> {
  return invoke<AppState>("sign_in_demo", { upn });
}

export function signOut(): Promise<AppState> {
  return invoke<AppState>("sign_out");
}
