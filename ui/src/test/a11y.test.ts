// @vitest-environment jsdom
// Each main view of the popover, checked by axe-core: no serious or critical violation.
// jsdom, not happy-dom, for this file: happy-dom breaks axe's selector code. jsdom does no layout, so
// colour contrast is not axe's to judge here: the token pairs are checked below instead.
import { afterEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { cleanup, fireEvent, render, screen } from "@testing-library/svelte";
import axe from "axe-core";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import App from "../App.svelte";
import { signedOut } from "./fixtures";
import type { AppState, ApprovalView, Entry } from "../lib/api";

const bob: AppState = {
  ...signedOut,
  signed_in_as: "bob@contoso.example",
  icon: "approval_waiting",
  tooltip: "Jumpgate: 1 approval waiting",
  approvals: 1,
  approver: true,
  can_connect: true,
  roles: [{ kind: "role", role: "JIT Requester", scope: "/subscriptions/s", start: "2026-11-27T11:45:00Z", end: "2026-11-27T12:45:00Z" }],
  targets: [
    {
      vm: "jumpbox-win-01",
      vm_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01",
      resource_group: "rg",
      subscription: "Contoso",
      ports: [{ number: 3389, max_minutes: 180 }],
      open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:30:00Z" }],
    },
    {
      vm: "jumpbox-linux-with-a-rather-long-name-01",
      vm_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-linux-with-a-rather-long-name-01",
      resource_group: "rg",
      subscription: "Contoso",
      ports: [{ number: 22, max_minutes: 60 }],
      open: [],
    },
  ],
  pending: [{ request: "p-1", role: "Reader", status: "PendingApproval" }],
};

const waiting: ApprovalView = {
  kind: "role",
  request: "r-1",
  requester: "alice@contoso.example",
  role: "JIT Requester",
  scope: "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-jumpboxes",
  justification: "Patch KB5034441",
  duration: "1 h",
  ticket: "ServiceNow:INC42",
  age_seconds: 125,
};

const entries: Entry[] = [
  {
    seq: 1,
    time: "2026-11-27T11:00:00Z",
    prev_hash: "0",
    entry_hash: "1",
    who: "bob@contoso.example",
    what: "approval_decided",
    role: "JIT Requester",
    justification: "Checked with the team",
    outcome: "approved",
  },
  {
    seq: 2,
    time: "2026-11-27T11:05:00Z",
    prev_hash: "1",
    entry_hash: "2",
    who: "alice@contoso.example",
    what: "port_opened",
    vm: "jumpbox-win-01",
    port: 3389,
    source_ip: "203.0.113.7",
    outcome: "denied",
  },
];

/** The app's answers; `answers` replaces what a command returns (a function may throw). */
function backend(state: AppState, answers: Record<string, unknown> = {}) {
  mockIPC(
    (cmd, args) => {
      if (cmd in answers) {
        const answer = answers[cmd];
        return typeof answer === "function" ? answer() : answer;
      }
      switch (cmd) {
        case "app_state":
          return state;
        case "remember_target": {
          const { vmId, what } = args as { vmId: string; what: string };
          return { favourites: what === "favourite" ? [vmId] : [], recent: what === "connected" ? [vmId] : [] };
        }
        case "check_connect": {
          // The backend's rules (core::policy::check_form); here, a vague justification.
          const form = (args as { form: { justification: string } }).form;
          return form.justification.trim().toLowerCase() === "bau"
            ? [{ field: "justification", rule: "JustificationRule", message: "\"bau\" is too vague for your organisation: say what you will do and why." }]
            : [];
        }
        case "take_intent":
          return null;
        case "approvals":
          return [waiting];
        case "history":
          return entries;
        default:
          return null;
      }
    },
    { shouldMockEvents: true },
  );
}

/** axe's serious and critical findings on the page, as readable lines. */
async function serious(): Promise<string[]> {
  const result = await axe.run(document.body, {
    resultTypes: ["violations"],
    rules: { "color-contrast": { enabled: false }, "color-contrast-enhanced": { enabled: false } },
  });
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

afterEach(() => {
  cleanup();
  clearMocks();
  localStorage.clear();
});

/** More jump boxes than a glance, with a long resource group and name: the search shows. */
const many: AppState = {
  ...bob,
  targets: [
    ...bob.targets,
    ...[1, 2, 3, 4, 5].map((n) => ({
      vm: `vm-${n}`,
      vm_id: `/subscriptions/s/resourceGroups/rg-${"x".repeat(57)}/providers/Microsoft.Compute/virtualMachines/vm-${n}`,
      resource_group: `rg-${"x".repeat(57)}`,
      subscription: "Contoso",
      ports: [{ number: 22, max_minutes: 60 }],
      open: [],
    })),
  ],
};

describe("accessibility of each view (axe-core)", () => {
  it("finds something on a page built to fail, so a clean result means something", async () => {
    const bad = document.createElement("div");
    bad.innerHTML = '<button></button><input type="text"><img src="x.png">';
    document.body.appendChild(bad);
    const found = await serious();
    bad.remove();
    expect(found.some((f) => f.startsWith("button-name"))).toBe(true);
    expect(found.some((f) => f.startsWith("label"))).toBe(true);
  });

  it("while the app's state is read, and when it cannot be", async () => {
    backend(bob, { app_state: () => new Promise(() => {}) });
    render(App);
    await screen.findByText("Reading your sign-in and access…");
    expect(await serious()).toEqual([]);
    cleanup();
    clearMocks();
    backend(bob, {
      app_state: () => {
        throw { kind: "unavailable", data: { code: "keychain", message: "The keychain is locked: unlock it, then try again." } };
      },
    });
    render(App);
    await screen.findByRole("button", { name: "Try again" });
    expect(await serious()).toEqual([]);
  });

  it("nothing active, with a request waiting", async () => {
    backend({ ...bob, roles: [], targets: bob.targets.map((t) => ({ ...t, open: [] })) });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Active" }));
    await screen.findByRole("button", { name: "Show the jump boxes" });
    expect(await serious()).toEqual([]);
  });

  it("signed out, with the demo users", async () => {
    backend(signedOut);
    render(App);
    await screen.findByRole("button", { name: "alice@contoso.example" });
    expect(await serious()).toEqual([]);
  });

  it("the jump boxes", async () => {
    backend(bob);
    render(App);
    await screen.findByRole("button", { name: "Connect to jumpbox-win-01" });
    expect(await serious()).toEqual([]);
  });

  it("many jump boxes, with the search and a favourite", async () => {
    backend(many);
    render(App);
    await screen.findByRole("searchbox", { name: /Find a jump box/ });
    await fireEvent.click(screen.getByRole("button", { name: "Favourite vm-3" }));
    expect(await serious()).toEqual([]);
    await fireEvent.input(screen.getByRole("searchbox"), { target: { value: "nothing" } });
    await screen.findByText(/No jump box matches/);
    expect(await serious()).toEqual([]);
  });

  it("no jump box", async () => {
    backend({ ...bob, targets: [] });
    render(App);
    await screen.findByText(/No jump box yet/);
    expect(await serious()).toEqual([]);
  });

  it("the choice of a jump box a link names, when several have that name", async () => {
    const legacy = {
      ...bob.targets[0],
      vm_id: "/subscriptions/l/resourceGroups/rg-legacy/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01",
      resource_group: "rg-legacy",
      subscription: "Contoso Legacy",
    };
    backend({ ...bob, targets: [...bob.targets, legacy] });
    render(App);
    await screen.findByRole("button", { name: "Connect to jumpbox-win-01 in rg-legacy" });
    expect(await serious()).toEqual([]);
    await emit("intent", { view: "connect:jumpbox-win-01", prefill: { vm: "jumpbox-win-01", port: 3389, duration: null, justification: null }, refused: null });
    await screen.findByRole("heading", { name: "Which jumpbox-win-01?" });
    expect(await serious()).toEqual([]);
  });

  it("the Connect form, with a problem shown", async () => {
    backend(bob);
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "bau" } });
    await screen.findByText(/too vague/);
    expect(await serious()).toEqual([]);
  });

  it("the active access", async () => {
    backend(bob);
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Active" }));
    await screen.findByRole("heading", { name: "Active access" });
    expect(await serious()).toEqual([]);
  });

  it("the jump boxes of someone without standing access, with an Activate form and a refusal", async () => {
    backend({
      ...bob,
      targets: [],
      reachable: {
        ways: [
          {
            kind: "role",
            name: "JIT Requester",
            scopes: [{ scope: "/subscriptions/s/resourceGroups/rg-jumpboxes", name: "rg-jumpboxes" }],
            holds: [],
            activate: 'jumpgate activate "JIT Requester"',
          },
          { kind: "group", name: "JIT Operators with a rather long group name", scopes: [], holds: [], activate: 'jumpgate activate "group:JIT Operators with a rather long group name"' },
        ],
        recent: [{ vm: "jumpbox-win-01", vm_id: bob.targets[0].vm_id, seen: "2026-11-20T09:00:00Z" }],
        groups_note: "Group memberships are not shown: Jumpgate may not read Microsoft Graph here.",
      },
    });
    render(App);
    await screen.findByRole("heading", { name: "Nothing to connect to yet" });
    expect(await serious()).toEqual([]);
    await fireEvent.click(screen.getAllByRole("button", { name: "Activate…" })[1]);
    await fireEvent.click(screen.getByRole("button", { name: "Activate" }));
    await screen.findByText("Say why you need access: the justification is required.");
    expect(await serious()).toEqual([]);
  });

  it("the Connect form, with a choice of ways", async () => {
    backend(bob, {
      ways: [
        { kind: "role", label: "JIT Requester at rg", via: "role:JIT Requester", certain: true, chosen: false },
        { kind: "group", label: "member of Platform Admins (what it grants is not known until it is active)", via: "group:41c2", certain: false, chosen: true },
      ],
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await screen.findByRole("group", { name: "Through" });
    expect(await serious()).toEqual([]);
  });

  it("the active access, a group membership in its first minutes, and a renewal to confirm", async () => {
    backend(
      {
        ...bob,
        roles: [
          ...bob.roles,
          { kind: "group", role: "JIT Operators", scope: "9a7e0c1d-5b2f-4e8a-9c3d-1f2e3a4b5c6d", start: "2026-11-27T11:58:00Z", end: "2026-11-27T12:58:00Z" },
        ],
      },
      {
        extend: () => {
          throw {
            kind: "conflict",
            data: { code: "confirm_renewal", message: "JIT Requester is active until 12:45. Renewing ends it first and asks the approver again." },
          };
        },
      },
    );
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Active" }));
    await screen.findByText(/It can be ended from/);
    expect(await serious()).toEqual([]);
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await fireEvent.click(screen.getAllByRole("button", { name: "Extend" })[0]);
    await screen.findByRole("alertdialog", { name: "Extend JIT Requester?" });
    expect(await serious()).toEqual([]);
  });

  it("approvals with a request waiting", async () => {
    backend(bob);
    render(App);
    await screen.findByText("Signed in as bob@contoso.example");
    await emit("intent", { view: "approvals:r-1:approve", prefill: null, refused: null });
    await screen.findByText("alice@contoso.example");
    expect(await serious()).toEqual([]);
  });

  it("approvals: one decided, fading, and nothing else waiting", async () => {
    backend(bob, { decide: [] });
    render(App);
    await screen.findByText("Signed in as bob@contoso.example");
    await fireEvent.click(screen.getByRole("button", { name: /^Approvals/ }));
    await fireEvent.click(await screen.findByRole("button", { name: "Approve" }));
    await screen.findByText("Nothing else waits for your decision.");
    expect(await serious()).toEqual([]);
  });

  it("approvals while reading, and when reading fails", async () => {
    backend(bob, { approvals: () => new Promise(() => {}) });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: /^Approvals/ }));
    await screen.findByText(/Reading the requests/);
    expect(await serious()).toEqual([]);
    cleanup();
    clearMocks();
    backend(bob, {
      approvals: () => {
        throw { kind: "unavailable", data: { code: "unavailable", message: "PIM did not answer: try again in a minute." } };
      },
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: /^Approvals/ }));
    await screen.findByRole("button", { name: "Try again" });
    expect(await serious()).toEqual([]);
  });

  it("the history", async () => {
    backend(bob);
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "History" }));
    await fireEvent.click(await screen.findByRole("button", { name: /approval decided/ }));
    await fireEvent.click(screen.getByRole("button", { name: "Export" }));
    await screen.findByRole("menuitem", { name: "Export JSON" });
    expect(await serious()).toEqual([]);
  });

  it("the history, empty and while reading", async () => {
    backend(bob, { history: [] });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "History" }));
    await screen.findByText(/Nothing here yet/);
    expect(await serious()).toEqual([]);
    cleanup();
    clearMocks();
    backend(bob, { history: () => new Promise(() => {}) });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "History" }));
    await screen.findByText("Reading your history…");
    expect(await serious()).toEqual([]);
  });

  it("help", async () => {
    backend(bob);
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Help" }));
    await screen.findByRole("button", { name: "Run checks" });
    expect(await serious()).toEqual([]);
  });

  it("help, with passed and failed checks and their actions", async () => {
    backend(bob, {
      diagnose: {
        checks: [
          { step: "signed_in", title: "Signed in", status: "pass", detail: `as ${"a".repeat(30)}@contoso-with-a-long-domain.example`, fix: null },
          { step: "jit_role", title: "A role that allows JIT is active", status: "fail", detail: "JIT Requester is eligible, not active", fix: "Request it: jumpgate connect jumpbox-win-01." },
          { step: "open_rule", title: "A JIT rule is open for this IP", status: "fail", detail: "a rule is open, for another address", fix: "Re-request it for your new address." },
          { step: "reachable", title: "The port answers", status: "skip", detail: "needs an open rule", fix: null },
        ],
        bundle: "jumpgate doctor",
      },
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Help" }));
    await fireEvent.click(screen.getByRole("button", { name: "Run checks" }));
    await screen.findByRole("button", { name: "Re-request for your new address" });
    expect(await serious()).toEqual([]);
  });
});

/** The tokens a block of styles.css sets: `--name: #rrggbb;`. */
function tokens(css: string, start: string): Record<string, string> {
  const from = css.indexOf(start);
  const block = css.slice(from, css.indexOf("\n}", from));
  return Object.fromEntries([...block.matchAll(/(--[a-z0-9-]+):\s*(#[0-9a-f]{6});/g)].map((m) => [m[1], m[2]]));
}

/** WCAG 2 contrast ratio of two #rrggbb colours. */
function contrast(a: string, b: string): number {
  const lum = (hex: string) => {
    const [r, g, bl] = [1, 3, 5].map((i) => {
      const c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

describe("colour tokens (styles.css)", () => {
  // Read from the file: Vitest hands CSS imports over empty, even with ?raw.
  const css = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../styles.css"), "utf8");
  const light = tokens(css, ":root {");
  const dark = { ...light, ...tokens(css, "@media (prefers-color-scheme: dark) {") };
  // In the order the cascade applies them.
  const moreBlock = tokens(css, "@media (prefers-contrast: more) {");
  const more = { ...light, ...moreBlock };
  const moreDark = { ...dark, ...moreBlock, ...tokens(css, "@media (prefers-contrast: more) and (prefers-color-scheme: dark) {") };
  // Text on the backgrounds it is drawn on: WCAG AA, 4.5:1.
  const TEXT: Array<[string, string]> = [
    ["--fg", "--bg"],
    ["--fg", "--surface"],
    ["--fg", "--surface-2"],
    ["--fg-muted", "--bg"],
    ["--fg-muted", "--surface"],
    ["--accent", "--surface"],
    ["--accent", "--accent-bg"],
    ["--accent-fg", "--accent"],
    ["--ok", "--ok-bg"],
    ["--ok", "--surface"],
    ["--warn", "--warn-bg"],
    ["--warn", "--surface"],
    ["--danger", "--danger-bg"],
    ["--danger", "--surface"],
    ["--danger-fg", "--danger"],
  ];
  for (const [name, set] of Object.entries({ light, dark, more, moreDark })) {
    it(`${name}: text meets 4.5:1 and control borders and the focus ring 3:1`, () => {
      const low = TEXT.map(([f, b]) => [f, b, contrast(set[f], set[b])] as const).filter(([, , r]) => r < 4.5);
      expect(low).toEqual([]);
      expect(contrast(set["--line-strong"], set["--surface"])).toBeGreaterThanOrEqual(3);
      expect(contrast(set["--focus"], set["--bg"])).toBeGreaterThanOrEqual(3);
    });
  }
  it("keeps the dark page the end-to-end test reads", () => {
    expect(dark["--bg"]).toBe("#1e1e1e");
  });
});
