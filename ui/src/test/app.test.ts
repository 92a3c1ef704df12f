import { afterEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { render, screen, fireEvent, cleanup } from "@testing-library/svelte";
import App from "../App.svelte";
import type { AppState } from "../lib/api";

const signedOut: AppState = {
  signed_in_as: null,
  demo: true,
  demo_users: ["alice@contoso.example", "bob@contoso.example"],
  icon: "signed_out",
  tooltip: "Jumpgate: signed out",
  targets: [],
};

afterEach(() => {
  cleanup();
  clearMocks();
});

describe("the popover", () => {
  it("offers the demo users and signs the picked one in", async () => {
    const calls: Array<[string, unknown]> = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === "app_state") return signedOut;
      if (cmd === "sign_in_demo") {
        return {
          ...signedOut,
          signed_in_as: "alice@contoso.example",
          icon: "idle",
          tooltip: "Jumpgate: no access open",
          targets: ["jumpbox-win-01", "jumpbox-linux-01"],
        };
      }
      throw new Error(`unexpected command ${cmd}`);
    });
    render(App);
    const alice = await screen.findByRole("button", { name: "alice@contoso.example" });
    await fireEvent.click(alice);
    expect(await screen.findByText("Signed in as alice@contoso.example")).toBeTruthy();
    expect(screen.getByText("jumpbox-win-01")).toBeTruthy();
    expect(calls).toContainEqual(["sign_in_demo", { upn: "alice@contoso.example" }]);
  });

  it("shows an engine error as an alert, not a crash", async () => {
    mockIPC((cmd) => {
      if (cmd === "app_state") return signedOut;
      throw {
        kind: "other",
        data: { code: "error", message: "demo sign-in as bob@contoso.example failed: the simulator is not running" },
      };
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "bob@contoso.example" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("demo sign-in as bob@contoso.example failed");
  });
});
