import { afterEach, describe, expect, it } from "vitest";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { render, screen, fireEvent, cleanup, waitFor, within } from "@testing-library/svelte";
import App from "../App.svelte";
import { signedOut } from "./fixtures";
import type { Activated, AppState, ApprovalView, Connected, Entry, FieldProblem, FormDraft, Intent, Reachable, Remembered, Renewed, WayView } from "../lib/api";
import { left } from "../lib/api";

const alice: AppState = {
  ...signedOut,
  signed_in_as: "alice@contoso.example",
  icon: "idle",
  tooltip: "Jumpgate: no access open",
  can_connect: true,
  targets: [
    { vm: "jumpbox-win-01", vm_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01", resource_group: "rg", subscription: "Contoso", ports: [{ number: 3389, max_minutes: 180 }], open: [] },
    { vm: "jumpbox-linux-01", vm_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-linux-01", resource_group: "rg", subscription: "Contoso", ports: [{ number: 22, max_minutes: 60 }], open: [] },
  ],
};

type Handler = (cmd: string, args: Record<string, unknown>) => unknown;

function backend(handler: Handler, calls: Array<[string, unknown]> = []) {
  mockIPC(
    (cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === "take_intent") return null;
      const answer = handler(cmd, (args ?? {}) as Record<string, unknown>);
      // A form the test's backend has nothing against.
      if (cmd === "check_connect" && answer == null) return [];
      return answer;
    },
    { shouldMockEvents: true },
  );
  return calls;
}

/** Presses Connect once the app has answered that the form may be sent. */
async function pressConnect() {
  const submit = screen.getByRole("button", { name: "Connect" }) as HTMLButtonElement;
  await waitFor(() => expect(submit.disabled).toBe(false));
  await fireEvent.click(submit);
}

afterEach(() => {
  cleanup();
  clearMocks();
  localStorage.clear();
});

/** A VM of a JIT policy in resource group `rg` of subscription `sub` ("Contoso Jump Boxes"). */
function vm(name: string, rg = "rg-jumpboxes", ports = [3389], sub = "s") {
  return {
    vm: name,
    vm_id: `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Compute/virtualMachines/${name}`,
    resource_group: rg,
    subscription: sub === "s" ? "Contoso Jump Boxes" : sub,
    ports: ports.map((number) => ({ number, max_minutes: 180 })),
    open: [] as AppState["targets"][number]["open"],
  };
}

/** The VM names of the jump-box cards, top to bottom. */
function cardNames(): string[] {
  return [...document.querySelectorAll("ul.targets li")].map((li) => li.getAttribute("data-vm") ?? "");
}

describe("the popover", () => {
  it("keeps a state the app sent while the first one was on its way", async () => {
    let answer: ((s: AppState) => void) | undefined;
    backend((cmd) => (cmd === "app_state" ? new Promise<AppState>((r) => (answer = r)) : null));
    render(App);
    await waitFor(() => expect(answer).toBeDefined());
    // The page listens for states by now (its calls go side by side).
    await new Promise((r) => setTimeout(r, 0));
    await emit("state", { ...alice, now: "2026-11-27T12:00:05Z" });
    answer!({ ...signedOut, now: "2026-11-27T12:00:00Z" });
    // Once the older answer has been handled, the newer state is still shown.
    await waitFor(() => expect(document.querySelector("main")?.getAttribute("aria-busy")).toBe("false"));
    expect(screen.getByText("Signed in as alice@contoso.example")).toBeTruthy();
  });

  it("offers the demo users and signs the picked one in", async () => {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return signedOut;
      if (cmd === "sign_in_demo") return alice;
      throw new Error(`unexpected command ${cmd}`);
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "alice@contoso.example" }));
    expect(await screen.findByText("Signed in as alice@contoso.example")).toBeTruthy();
    expect(screen.getByText("jumpbox-win-01")).toBeTruthy();
    expect(calls).toContainEqual(["sign_in_demo", { upn: "alice@contoso.example" }]);
  });

  it("shows an engine error as an alert, not a crash", async () => {
    backend((cmd) => {
      if (cmd === "app_state") return signedOut;
      throw { kind: "other", data: { code: "error", message: "demo sign-in as bob@contoso.example failed: the simulator is not running" } };
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "bob@contoso.example" }));
    expect((await screen.findByRole("alert")).textContent).toContain("demo sign-in as bob@contoso.example failed");
  });

  it("shows the problem the app answers next to its field, and sends nothing while there is one", async () => {
    const calls = backend((cmd, args) => {
      if (cmd === "app_state") return alice;
      if (cmd === "check_connect") {
        const form = args.form as FormDraft;
        const problems: FieldProblem[] = [];
        if (form.duration === "4h")
          problems.push({ field: "duration", rule: "JitDuration", message: "4h is longer than port 3389 allows (at most 3h, PT3H): ask for less." });
        if (!form.justification.trim())
          problems.push({ field: "justification", rule: "Justification", message: "Say why you need access: the justification is required." });
        return problems;
      }
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    const submit = (await screen.findByRole("button", { name: "Connect" })) as HTMLButtonElement;
    // An untouched form says nothing yet, but may not be sent.
    await waitFor(() => expect(calls.some(([c]) => c === "check_connect")).toBe(true));
    expect(submit.disabled).toBe(true);
    expect(screen.queryByText(/justification is required/)).toBeNull();

    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    const duration = screen.getByLabelText(/Duration/) as HTMLInputElement;
    await fireEvent.input(duration, { target: { value: "4h" } });
    const message = await screen.findByText("4h is longer than port 3389 allows (at most 3h, PT3H): ask for less.");
    expect(duration.getAttribute("aria-invalid")).toBe("true");
    expect(duration.getAttribute("aria-describedby")).toBe(message.id);
    expect(submit.disabled).toBe(true);
    // The app was asked with the form and the ports it was shown.
    expect(calls.filter(([c]) => c === "check_connect").at(-1)?.[1]).toEqual({
      form: { port: 3389, duration: "4h", justification: "Patch KB5034441", ticket: "", ports: [{ number: 3389, max_minutes: 180 }] },
    });
    // Even a submit that gets past the button asks again and sends nothing.
    await fireEvent.submit(submit.closest("form")!);
    await new Promise((r) => setTimeout(r, 50));
    expect(calls.some(([c]) => c === "connect")).toBe(false);
    expect(screen.getByText(/at most 3h, PT3H/)).toBeTruthy();

    await fireEvent.input(duration, { target: { value: "2h" } });
    await waitFor(() => expect(submit.disabled).toBe(false));
    expect(screen.queryByText(/at most 3h, PT3H/)).toBeNull();
    expect(duration.getAttribute("aria-invalid")).toBeNull();
  });

  it("holds no rule of its own: a refuse list changed in the app alone is followed", async () => {
    // The app's refuse list, which the popover is never given.
    let refuse = ["Routine work"];
    const calls = backend((cmd, args) => {
      if (cmd === "app_state") return alice;
      if (cmd === "check_connect") {
        const j = (args.form as FormDraft).justification.trim();
        return refuse.some((r) => r.toLowerCase() === j.toLowerCase())
          ? [{ field: "justification", rule: "JustificationRule", message: `'${j}' is too vague for your organisation: say what you will do and why.` }]
          : [];
      }
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    const submit = (await screen.findByRole("button", { name: "Connect" })) as HTMLButtonElement;
    const why = screen.getByLabelText("Justification") as HTMLInputElement;
    await fireEvent.input(why, { target: { value: "BAU" } });
    await waitFor(() => expect(submit.disabled).toBe(false));
    expect(screen.queryByText(/too vague/)).toBeNull();

    refuse = ["BAU"];
    await fireEvent.input(why, { target: { value: "bau" } });
    expect(await screen.findByText("'bau' is too vague for your organisation: say what you will do and why.")).toBeTruthy();
    expect(why.getAttribute("aria-invalid")).toBe("true");
    expect(submit.disabled).toBe(true);
    await fireEvent.click(submit);
    expect(calls.some(([c]) => c === "connect")).toBe(false);
  });

  it("asks once typing pauses, and shows only the latest answer", async () => {
    const slow: Array<() => void> = [];
    const calls = backend((cmd, args) => {
      if (cmd === "app_state") return alice;
      if (cmd === "check_connect") {
        const j = (args.form as FormDraft).justification;
        if (j === "Pat") {
          // An answer that arrives after the next question's.
          return new Promise<FieldProblem[]>((r) =>
            slow.push(() => r([{ field: "justification", rule: "JustificationRule", message: "stale answer" }])),
          );
        }
        return [];
      }
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    const submit = (await screen.findByRole("button", { name: "Connect" })) as HTMLButtonElement;
    await waitFor(() => expect(calls.filter(([c]) => c === "check_connect").length).toBe(1));
    const why = screen.getByLabelText("Justification");
    for (const text of ["P", "Pa", "Pat"]) await fireEvent.input(why, { target: { value: text } });
    await waitFor(() => expect(slow.length).toBe(1));
    // Three keystrokes, one question.
    expect(calls.filter(([c]) => c === "check_connect").length).toBe(2);
    await fireEvent.input(why, { target: { value: "Patch night" } });
    await waitFor(() => expect(submit.disabled).toBe(false));
    slow[0]();
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByText("stale answer")).toBeNull();
    expect(submit.disabled).toBe(false);
  });

  it("connects and shows each step of the chain as the engine reports it", async () => {
    let finish: (c: Connected) => void = () => {};
    const calls = backend((cmd) => {
      if (cmd === "app_state") return alice;
      if (cmd === "connect") return new Promise<Connected>((r) => (finish = r));
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await fireEvent.input(screen.getByLabelText(/Ticket/), { target: { value: "ServiceNow:INC42" } });
    await pressConnect();
    await waitFor(() => expect(calls.some(([c]) => c === "connect")).toBe(true));
    expect(calls.find(([c]) => c === "connect")?.[1]).toEqual({
      form: { vm: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01", port: 3389, duration: "1h", justification: "Patch KB5034441", ticket: "ServiceNow:INC42", launch: true, via: null },
    });
    await emit("engine", { kind: "step", step: "request_role", detail: "JIT Requester (PendingApproval)", at: "2026-11-27T12:00:01Z", skips: [] });
    await waitFor(() => expect(document.querySelector('[data-step="request_role"]')?.className).toContain("done"));
    expect(document.querySelector('[data-step="await_approval"]')?.className).toContain("waiting");
    await emit("engine", { kind: "progress", message: "waiting for approval (15 s so far)" });
    expect(await screen.findByText("waiting for approval (15 s so far)")).toBeTruthy();
    finish({
      vm: "jumpbox-win-01",
      port: 3389,
      endpoint: "127.0.0.10:3389",
      steps: [
        { step: "await_approval", label: "approved", at: "2026-11-27T12:00:05Z", detail: "Provisioned" },
        { step: "open_port", label: "port opened", at: "2026-11-27T12:00:07Z", detail: "3389 for 203.0.113.7 until 13:00:07" },
        { step: "launch", label: "client launched", at: "2026-11-27T12:00:08Z", detail: "xfreerdp" },
      ],
    });
    expect(await screen.findByText("Ready: connect to 127.0.0.10:3389.")).toBeTruthy();
    // The port is said once: "Port opened", then what the engine opened.
    expect(screen.getByText("3389 for 203.0.113.7 until 13:00:07")).toBeTruthy();
  });

  it("runs the timeline from typed events alone: every detail string can change", async () => {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return alice;
      if (cmd === "connect") return new Promise<Connected>(() => {});
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await pressConnect();
    await waitFor(() => expect(calls.some(([c]) => c === "connect")).toBe(true));
    const state = (step: string) => document.querySelector(`[data-step="${step}"]`)?.className ?? "";
    // The access check finds the role already active; its words are gibberish on purpose.
    await emit("engine", { kind: "step", step: "check_access", detail: "ẍẍẍ 1", at: "2026-11-27T12:00:01Z", skips: ["request_role", "await_approval", "await_effect"] });
    await waitFor(() => expect(state("await_effect")).toContain("done"));
    expect(state("request_role")).toContain("done");
    expect(state("await_approval")).toContain("done");
    expect(state("open_port")).toContain("waiting");
    await emit("engine", { kind: "step", step: "open_port", detail: "ẍẍẍ 2", at: "2026-11-27T12:00:02Z", skips: [] });
    await waitFor(() => expect(state("open_port")).toContain("done"));
    expect(state("await_reachable")).toContain("waiting");
    // A check that finds no access skips nothing, whatever it says.
    cleanup();
    clearMocks();
    const again = backend((cmd) => {
      if (cmd === "app_state") return alice;
      if (cmd === "connect") return new Promise<Connected>(() => {});
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await pressConnect();
    await waitFor(() => expect(again.some(([c]) => c === "connect")).toBe(true));
    await emit("engine", { kind: "step", step: "check_access", detail: "JIT initiate is permitted", at: "2026-11-27T12:00:01Z", skips: [] });
    await new Promise((r) => setTimeout(r, 50));
    expect(state("request_role")).toContain("waiting");
    expect(state("await_approval")).not.toContain("done");
  });

  it("marks the failed step with what to do", async () => {
    backend((cmd) => {
      if (cmd === "app_state") return alice;
      if (cmd === "connect") throw { kind: "denied", data: { code: "connect_failed", message: "The role request was denied: not during the freeze" } };
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await pressConnect();
    expect((await screen.findByRole("alert")).textContent).toContain("not during the freeze");
    expect(document.querySelector('[data-step="request_role"]')?.className).toContain("failed");
  });

  it("asks before opening a port to a range wider than a /24, and sends the consent only when given", async () => {
    const calls = backend((cmd, args) => {
      if (cmd === "app_state") return alice;
      if (cmd === "connect" && !(args.form as Record<string, unknown>).allow_wide_source)
        throw {
          kind: "conflict",
          data: {
            code: "confirm_wide_source",
            message: "Not sent: the JIT policy of jumpbox-win-01 admits your address 84.17.40.23 on port 3389 only as part of 84.17.32.0/20, which opens the port to 4096 addresses, not just yours.",
          },
        };
      if (cmd === "connect") return new Promise<Connected>(() => {});
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await pressConnect();
    const dialog = await screen.findByRole("alertdialog");
    expect(dialog.textContent).toContain("84.17.32.0/20");
    expect(dialog.textContent).toContain("4096 addresses");
    expect(calls.filter(([c]) => c === "connect")).toHaveLength(1);
    await fireEvent.click(screen.getByRole("button", { name: "Open it to the whole range" }));
    await waitFor(() => expect(calls.filter(([c]) => c === "connect")).toHaveLength(2));
    const sent = calls.filter(([c]) => c === "connect").map(([, a]) => (a as { form: Record<string, unknown> }).form);
    expect(sent[0].allow_wide_source).toBeUndefined();
    expect(sent[1].allow_wide_source).toBe(true);
    expect(screen.queryByRole("alertdialog")).toBeNull();
  });

  it("opens a link's Connect form prefilled, and sends nothing by itself", async () => {
    const calls = backend((cmd) => (cmd === "app_state" ? alice : null));
    render(App);
    await screen.findByText("jumpbox-win-01");
    const intent: Intent = {
      view: "connect:jumpbox-win-01",
      prefill: { vm: "jumpbox-win-01", port: 3389, duration: "PT2H", justification: "Incident 4711" },
      refused: null,
    };
    await emit("intent", intent);
    expect(await screen.findByText(/Filled in from a link/)).toBeTruthy();
    expect((screen.getByLabelText("Justification") as HTMLInputElement).value).toBe("Incident 4711");
    expect((screen.getByLabelText(/Duration/) as HTMLInputElement).value).toBe("PT2H");
    expect(calls.some(([c]) => c === "connect")).toBe(false);
  });

  it("lets a manager approve with a justification, prefilled from the template", async () => {
    const waiting: ApprovalView = {
      kind: "role",
      request: "r-1",
      requester: "alice@contoso.example",
      role: "JIT Requester",
      scope: "/subscriptions/s",
      justification: "Patch KB5034441",
      duration: "1 h",
      ticket: "ServiceNow:INC42",
      age_seconds: 125,
    };
    const calls = backend((cmd) => {
      if (cmd === "app_state") return { ...alice, signed_in_as: "bob@contoso.example", approvals: 1, approver: true };
      if (cmd === "approvals") return [waiting];
      if (cmd === "decide") return [];
      return null;
    });
    render(App);
    await screen.findByText("Signed in as bob@contoso.example");
    await emit("intent", { view: "approvals:r-1:approve", prefill: null, refused: null });
    expect(await screen.findByText("alice@contoso.example")).toBeTruthy();
    expect(screen.getByText("Waiting 2 min")).toBeTruthy();
    expect((screen.getByLabelText("Your justification") as HTMLInputElement).value).toBe("Checked with the team");
    await fireEvent.click(screen.getByRole("button", { name: "Approve" }));
    expect(await screen.findByText("Approved alice@contoso.example's request for JIT Requester.")).toBeTruthy();
    expect(calls).toContainEqual(["decide", { request: "r-1", approve: true, justification: "Checked with the team" }]);
  });

  it("says at a glance what is open and how long is left, in the header", async () => {
    const open: AppState = {
      ...alice,
      signed_in_as: "alice.with.a.very.long.name@subsidiary.contoso.example",
      icon: "expiring_soon",
      tooltip: "Jumpgate: JIT Requester ends in 9 min",
      now: new Date().toISOString(),
      roles: [{ kind: "role", role: "JIT Requester", scope: "/subscriptions/s", start: null, end: new Date(Date.now() + 9 * 60_000 + 30_000).toISOString() }],
      targets: [
        {
          ...alice.targets[0],
          open: [{ port: 3389, source: "203.0.113.7", end: new Date(Date.now() + 30 * 60_000).toISOString() }],
        },
      ],
    };
    backend((cmd) => (cmd === "app_state" ? open : null));
    render(App);
    const pill = (await screen.findByText("Ending soon")).closest("[role=status]") as HTMLElement;
    expect(pill.dataset.icon).toBe("expiring_soon");
    expect(pill.getAttribute("title")).toBe("Jumpgate: JIT Requester ends in 9 min");
    const account = screen.getByText("Signed in as alice.with.a.very.long.name@subsidiary.contoso.example");
    expect(account.getAttribute("title")).toBe("alice.with.a.very.long.name@subsidiary.contoso.example");
    // The role ends first; the bar follows the port, the only access whose total is known.
    expect(screen.getByText(/^9 min \d\d s left$/)).toBeTruthy();
    const bar = document.querySelector("progress") as HTMLProgressElement;
    expect(bar.getAttribute("max")).toBe(String(180 * 60_000));
    expect(Number(bar.getAttribute("value"))).toBeGreaterThan(29 * 60_000);
    expect(bar.getAttribute("aria-label")).toContain("jumpbox-win-01 port 3389");
  });

  it("shows no time left and no bar when nothing is open", async () => {
    backend((cmd) => (cmd === "app_state" ? alice : null));
    render(App);
    expect((await screen.findByText("No access open")).closest("[role=status]")?.getAttribute("data-icon")).toBe("idle");
    expect(screen.queryByText(/ left$/)).toBeNull();
    expect(document.querySelector("progress")).toBeNull();
  });

  it("keeps the views in one row of named buttons, with the approvals waiting as a badge", async () => {
    backend((cmd) => {
      if (cmd === "app_state") return { ...alice, icon: "approval_waiting", approvals: 3, approver: true };
      if (cmd === "history") return [];
      return null;
    });
    render(App);
    const nav = await screen.findByRole("navigation", { name: "Views" });
    const names = Array.from(nav.querySelectorAll("button")).map((b) => b.textContent?.replace(/\s+/g, " ").trim());
    expect(names).toEqual(["Jump boxes", "Active", "Approvals, 3 waiting", "History", "Help"]);
    expect(screen.getByText("3 approvals for you")).toBeTruthy();
    expect(nav.querySelectorAll("svg[aria-hidden='true']").length).toBe(5);
    expect(screen.getByRole("button", { name: "Jump boxes" }).getAttribute("aria-current")).toBe("page");
    await fireEvent.click(screen.getByRole("button", { name: "History" }));
    expect(await screen.findByRole("heading", { name: "History" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "History" }).getAttribute("aria-current")).toBe("page");
    expect(screen.getByRole("button", { name: "Jump boxes" }).getAttribute("aria-current")).toBeNull();
  });

  it("counts down what is open, on ARM's clock", () => {
    const now = Date.parse("2026-11-27T12:00:00Z");
    expect(left("2026-11-27T12:04:09Z", now)).toBe("4 min 09 s");
    expect(left("2026-11-27T13:05:00Z", now)).toBe("1 h 05 min");
    expect(left("2026-11-27T11:59:00Z", now)).toBe("ended");
  });

  it("signs in with the system browser, and Cancel ends the wait", async () => {
    let reject: (e: unknown) => void = () => {};
    const calls = backend((cmd) => {
      if (cmd === "app_state") return { ...signedOut, demo: false, demo_users: [] };
      if (cmd === "sign_in") return new Promise((_, r) => (reject = r));
      if (cmd === "cancel_sign_in") {
        reject({ kind: "not_available", data: { code: "sign_in_cancelled", message: "Sign-in cancelled." } });
        return null;
      }
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Sign in" }));
    await fireEvent.click(await screen.findByRole("button", { name: "Cancel" }));
    expect((await screen.findByRole("alert")).textContent).toContain("Sign-in cancelled.");
    expect(calls.map(([c]) => c)).toContain("cancel_sign_in");
    expect(screen.queryByRole("button", { name: "Cancel" })).toBeNull();
  });
});

describe("views a person cannot use", () => {
  /** The views in the nav, by their names. */
  async function navNames(): Promise<string[]> {
    const nav = await screen.findByRole("navigation", { name: "Views" });
    return Array.from(nav.querySelectorAll("button")).map((b) => b.textContent?.replace(/\s+/g, " ").trim() ?? "");
  }

  it("hides Approvals from someone who approves nothing, and a link to it says why", async () => {
    backend((cmd) => (cmd === "app_state" ? alice : null));
    render(App);
    expect(await navNames()).toEqual(["Jump boxes", "Active", "History", "Help"]);
    await emit("intent", { view: "approvals:r-1:approve", prefill: null, refused: null });
    expect((await screen.findByRole("alert")).textContent).toMatch(/^Approvals is hidden: nothing waits for your decision/);
    expect(screen.getByRole("button", { name: "Jump boxes" }).getAttribute("aria-current")).toBe("page");
    expect(screen.queryByRole("heading", { name: "Approvals" })).toBeNull();
  });

  it("shows Approvals once the app finds the person an approver, and falls back when it goes", async () => {
    backend((cmd) => {
      if (cmd === "app_state") return alice;
      if (cmd === "approvals") return [];
      return null;
    });
    render(App);
    await screen.findByText("Signed in as alice@contoso.example");
    await emit("state", { ...alice, approver: true });
    expect(await navNames()).toEqual(["Jump boxes", "Active", "Approvals", "History", "Help"]);
    await fireEvent.click(screen.getByRole("button", { name: "Approvals" }));
    expect(await screen.findByRole("heading", { name: "Approvals" })).toBeTruthy();
    // Signed in as someone else who approves nothing: the jump boxes, not an empty Approvals.
    await emit("state", { ...alice, signed_in_as: "carol@contoso.example", approver: false });
    await screen.findByText("Signed in as carol@contoso.example");
    expect(screen.queryByRole("heading", { name: "Approvals" })).toBeNull();
    expect(screen.getByRole("heading", { name: "Jump boxes" })).toBeTruthy();
    expect(await navNames()).not.toContain("Approvals");
  });

  it("offers no Connect to someone who cannot ask for access, and a link to it says why", async () => {
    const carol: AppState = { ...alice, signed_in_as: "carol@contoso.example", can_connect: false };
    const calls = backend((cmd) => (cmd === "app_state" ? carol : null));
    render(App);
    await screen.findByText("jumpbox-win-01");
    expect(screen.queryByRole("button", { name: /^Connect/ })).toBeNull();
    expect(screen.getByText(/no PIM role you are eligible for opens them, so there is no Connect/)).toBeTruthy();
    await emit("intent", {
      view: "connect",
      prefill: { vm: "jumpbox-win-01", port: 3389, duration: "PT1H", justification: "Patch night" },
      refused: null,
    });
    expect((await screen.findByRole("alert")).textContent).toMatch(/^You cannot ask for access here/);
    expect(screen.queryByLabelText("Justification")).toBeNull();
    expect(calls.some(([c]) => c === "check_connect" || c === "connect")).toBe(false);
  });
});

describe("the first run", () => {
  const notSetUp = { kind: "not_available", data: { code: "first_run", message: "Jumpgate is not set up yet." } };
  const tenant = {
    email: "alice@contoso.example",
    domain: "contoso.example",
    tenant_id: "7b3f6c1e-2a4d-4e8b-9f10-5c6d7e8f9a01",
    config_path: "/home/alice/.config/jumpgate/config.toml",
  };

  it("finds the organisation from the email, writes the configuration and goes on to Sign in", async () => {
    let configured = false;
    const calls = backend((cmd) => {
      if (cmd === "app_state" && !configured) throw notSetUp;
      if (cmd === "discover_tenant") return tenant;
      if (cmd === "write_first_config") {
        configured = true;
        return { ...signedOut, demo: false, demo_users: [] };
      }
      throw new Error(`unexpected command ${cmd}`);
    });
    render(App);
    await fireEvent.input(await screen.findByLabelText("Work email"), { target: { value: "alice@contoso.example" } });
    await fireEvent.input(screen.getByLabelText("Client id"), {
      target: { value: "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51" },
    });
    await fireEvent.click(screen.getByRole("button", { name: "Save and continue" }));
    expect(await screen.findByRole("button", { name: "Sign in" })).toBeTruthy();
    expect(screen.queryByText("Set up Jumpgate")).toBeNull();
    expect(screen.getByText("Jumpgate is set up for contoso.example. Sign in to go on.")).toBeTruthy();
    expect(calls).toContainEqual(["discover_tenant", { email: "alice@contoso.example", authority: "https://login.microsoftonline.com" }]);
    expect(calls).toContainEqual([
      "write_first_config",
      {
        email: "alice@contoso.example",
        authority: "https://login.microsoftonline.com",
        tenantId: tenant.tenant_id,
        signIn: { type: "app", client_id: "4f2c9a6e-8b1d-4c3e-a5f7-0d9e8c7b6a51" },
      },
    ]);
  });

  it("says what to do about an unknown domain and writes nothing", async () => {
    const calls = backend((cmd) => {
      if (cmd === "app_state") throw notSetUp;
      if (cmd === "discover_tenant")
        throw {
          kind: "invalid",
          data: { code: "unknown_domain", message: "Entra ID knows no organisation with the domain fabrikam.example (AADSTS90002): check the spelling" },
        };
      throw new Error(`unexpected command ${cmd}`);
    });
    render(App);
    await fireEvent.input(await screen.findByLabelText("Work email"), { target: { value: "alice@fabrikam.example" } });
    await fireEvent.click(screen.getByLabelText("With the Azure CLI (az login), no app registration"));
    expect(screen.queryByLabelText("Client id")).toBeNull();
    await fireEvent.click(screen.getByRole("button", { name: "Save and continue" }));
    expect((await screen.findByRole("alert")).textContent).toContain("AADSTS90002");
    expect(calls.some(([cmd]) => cmd === "write_first_config")).toBe(false);
    expect(screen.getByText("Set up Jumpgate")).toBeTruthy();
  });

  it("offers the Azure CLI sign-in when the configuration says so", async () => {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return { ...signedOut, demo: false, demo_users: [], azure_cli: true };
      if (cmd === "sign_in") return alice;
      throw new Error(`unexpected command ${cmd}`);
    });
    render(App);
    expect(await screen.findByText(/reuses your Azure CLI sign-in/)).toBeTruthy();
    await fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByText("Signed in as alice@contoso.example")).toBeTruthy();
    expect(calls.some(([cmd]) => cmd === "sign_in")).toBe(true);
  });
});

describe("the jump boxes", () => {
  it("shows each VM's name, resource group, ports and what is open", async () => {
    const open = { ...vm("jumpbox-win-01", "rg-prod-weu"), open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:30:00Z" }] };
    backend((cmd) => (cmd === "app_state" ? { ...alice, targets: [open, vm("jumpbox-linux-01", "rg-dev", [22])] } : null));
    render(App);
    const card = (await screen.findByRole("button", { name: "Connect to jumpbox-win-01" })).closest("li")!;
    expect(card.textContent).toContain("rg-prod-weu");
    const chip = [...card.querySelectorAll(".chip")].map((c) => c.textContent ?? "");
    expect(chip[0]).toMatch(/^RDP 3389 · open until /);
    expect(chip[0].includes(new Date("2026-11-27T12:30:00Z").toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }))).toBe(true);
    expect(screen.getByText("SSH 22").className).not.toContain("ok");
    expect(screen.getByText("rg-dev")).toBeTruthy();
  });

  it("puts the recently connected first, then favourites, then the rest by name, as the app remembers them", async () => {
    const targets = ["delta", "alpha", "echo", "charlie", "bravo"].map((n) => vm(n));
    // The app's store: what remember_target changes and app_state answers.
    let kept: Remembered = { favourites: [targets[3].vm_id], recent: [targets[2].vm_id, targets[0].vm_id] };
    const calls = backend((cmd, args) => {
      if (cmd === "app_state") return { ...alice, targets, remembered: kept };
      if (cmd === "remember_target") {
        const { vmId, what } = args as { vmId: string; what: string };
        if (what === "favourite") kept = { ...kept, favourites: [...kept.favourites, vmId] };
        if (what === "unfavourite") kept = { ...kept, favourites: kept.favourites.filter((v) => v !== vmId) };
        if (what === "connected") kept = { ...kept, recent: [vmId, ...kept.recent.filter((v) => v !== vmId)].slice(0, 3) };
        return kept;
      }
      return null;
    });
    const { unmount } = render(App);
    await screen.findByText("echo");
    expect(cardNames()).toEqual(["echo", "delta", "charlie", "alpha", "bravo"]);

    // Starring bravo moves it up once the app has kept it; connecting to alpha puts it on top.
    const star = screen.getByRole("button", { name: "Favourite bravo" });
    expect(star.getAttribute("aria-pressed")).toBe("false");
    await fireEvent.click(star);
    await waitFor(() => expect(screen.getByRole("button", { name: "Favourite bravo" }).getAttribute("aria-pressed")).toBe("true"));
    expect(cardNames()).toEqual(["echo", "delta", "bravo", "charlie", "alpha"]);
    expect(calls).toContainEqual(["remember_target", { vmId: targets[4].vm_id, what: "favourite" }]);
    await fireEvent.click(screen.getByRole("button", { name: "Connect to alpha" }));
    await screen.findByRole("heading", { name: "Connect to alpha in rg-jumpboxes" });
    await fireEvent.click(screen.getByRole("button", { name: "Back to jump boxes" }));
    expect(cardNames()).toEqual(["alpha", "echo", "delta", "bravo", "charlie"]);
    // The webview keeps nothing: a new popover shows what the app kept.
    expect(localStorage.length).toBe(0);
    unmount();
    render(App);
    await screen.findByText("echo");
    expect(cardNames()).toEqual(["alpha", "echo", "delta", "bravo", "charlie"]);
  });

  it("hands what the webview kept before to the app once, newest recent first, and forgets it", async () => {
    const [a, b, c] = [vm("a"), vm("b"), vm("c")];
    localStorage.setItem("jumpgate.recent", JSON.stringify([b.vm_id, a.vm_id, 7]));
    localStorage.setItem("jumpgate.favourites", JSON.stringify([c.vm_id]));
    const calls = backend((cmd) => (cmd === "app_state" ? { ...alice, targets: [a, b, c] } : cmd === "remember_target" ? { favourites: [], recent: [] } : null));
    render(App);
    await screen.findByText("a");
    await waitFor(() => expect(localStorage.length).toBe(0));
    expect(calls.filter(([cmd]) => cmd === "remember_target").map(([, args]) => args)).toEqual([
      { vmId: c.vm_id, what: "favourite" },
      { vmId: a.vm_id, what: "connected" },
      { vmId: b.vm_id, what: "connected" },
    ]);
  });

  it("reads a broken list left in the webview as nothing, and keeps it when the app refuses", async () => {
    localStorage.setItem("jumpgate.recent", "{not json");
    localStorage.setItem("jumpgate.favourites", JSON.stringify({ a: 1 }));
    const calls = backend((cmd) => (cmd === "app_state" ? { ...alice, targets: [vm("b"), vm("a")] } : null));
    render(App);
    await screen.findByText("a");
    expect(cardNames()).toEqual(["a", "b"]);
    expect(calls.some(([cmd]) => cmd === "remember_target")).toBe(false);

    cleanup();
    clearMocks();
    localStorage.setItem("jumpgate.favourites", JSON.stringify([vm("a").vm_id]));
    backend((cmd) => {
      if (cmd === "app_state") return { ...alice, targets: [vm("b"), vm("a")] };
      if (cmd === "remember_target") throw { kind: "other", data: { code: "state", message: "Cannot remember that in /x: disk full." } };
      return null;
    });
    render(App);
    expect((await screen.findByRole("alert")).textContent).toContain("disk full");
    expect(localStorage.getItem("jumpgate.favourites")).not.toBeNull();
  });

  it("offers a search once there are more than 6, by name or resource group", async () => {
    const six = ["vm-1", "vm-2", "vm-3", "vm-4", "vm-5", "vm-6"].map((n) => vm(n));
    backend((cmd) => (cmd === "app_state" ? { ...alice, targets: six } : null));
    const { unmount } = render(App);
    await screen.findByText("vm-1");
    expect(screen.queryByRole("searchbox")).toBeNull();
    unmount();
    clearMocks();

    const seven = [...six, vm("sql-bastion", "rg-databases-with-a-very-long-name-that-goes-on-and-on-and-on")];
    backend((cmd) => (cmd === "app_state" ? { ...alice, targets: seven } : null));
    render(App);
    const search = await screen.findByRole("searchbox", { name: /Find a jump box/ });
    await fireEvent.input(search, { target: { value: "DATABASES" } });
    expect(cardNames()).toEqual(["sql-bastion"]);
    await fireEvent.input(search, { target: { value: "vm-3" } });
    expect(cardNames()).toEqual(["vm-3"]);
    await fireEvent.input(search, { target: { value: "nothing-like-this" } });
    expect(cardNames()).toEqual([]);
    expect(screen.getByText("No jump box matches “nothing-like-this”.")).toBeTruthy();
  });

  it("says what to do when no VM is covered", async () => {
    backend((cmd) => (cmd === "app_state" ? { ...alice, targets: [] } : null));
    render(App);
    expect(await screen.findByText(/No jump box yet: no JIT policy covers a VM you can see/)).toBeTruthy();
  });
});

describe("approvals", () => {
  const request = (n: number, extra: Partial<ApprovalView> = {}): ApprovalView => ({
    kind: "role",
    request: `r-${n}`,
    requester: `user${n}@contoso.example`,
    role: "JIT Requester",
    scope: "/subscriptions/s/resourceGroups/rg-jumpboxes",
    justification: "Patch KB5034441",
    duration: "1 h",
    ticket: null,
    age_seconds: 30,
    ...extra,
  });
  const bob = { ...alice, signed_in_as: "bob@contoso.example", approvals: 2, approver: true };

  async function openApprovals() {
    render(App);
    await screen.findByText("Signed in as bob@contoso.example");
    await fireEvent.click(screen.getByRole("button", { name: /^Approvals/ }));
  }

  it("shows who asks for what and where, the justification as text, and how long it waited", async () => {
    backend((cmd) => {
      if (cmd === "app_state") return bob;
      if (cmd === "approvals") return [request(1, { justification: "<b>urgent</b> <img src=x onerror=alert(1)>", ticket: "ServiceNow:INC42", age_seconds: 7260 })];
      return null;
    });
    await openApprovals();
    const card = (await screen.findByText("user1@contoso.example")).closest("li")!;
    expect(card.querySelector(".who")?.textContent).toBe("user1@contoso.example asks for JIT Requester on rg-jumpboxes");
    expect(card.querySelector("blockquote")?.textContent).toBe("“<b>urgent</b> <img src=x onerror=alert(1)>”");
    expect(card.querySelector("img, b")).toBeNull();
    expect(card.textContent).toContain("For 1 h");
    expect(card.textContent).toContain("Ticket ServiceNow:INC42");
    expect(screen.getByText("Waiting 2 h 1 min").className).toContain("warn");
  });

  it("fades a decided request out and leaves one line saying what was decided", async () => {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return bob;
      if (cmd === "approvals") return [request(1), request(2)];
      if (cmd === "decide") return [request(2)];
      return null;
    });
    await openApprovals();
    const first = (await screen.findByText("user1@contoso.example")).closest("li")!;
    const deny = [...first.querySelectorAll("button")].find((b) => b.textContent === "Deny")!;
    await fireEvent.input(first.querySelector("input")!, { target: { value: "Not in the change window" } });
    await fireEvent.click(deny);
    await waitFor(() => expect(first.className).toContain("fading"));
    expect(await screen.findByText("Denied user1@contoso.example's request for JIT Requester.")).toBeTruthy();
    await waitFor(() => expect(screen.queryByText("user1@contoso.example")).toBeNull());
    expect(screen.getByText("user2@contoso.example")).toBeTruthy();
    expect(screen.getByRole("status", { name: "" }).textContent).toContain("Denied user1@contoso.example's request");
    expect(calls).toContainEqual(["decide", { request: "r-1", approve: false, justification: "Not in the change window" }]);
    // The other card still starts from the template.
    expect((screen.getByLabelText("Your justification") as HTMLInputElement).value).toBe("Checked with the team");
  });

  it("asks for membership of a group, and says no scope for it", async () => {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return bob;
      if (cmd === "approvals") return [request(1, { kind: "group", role: "JIT Operators", scope: "9a7e0c1d-5b2f-4e8a-9c3d-1f2e3a4b5c6d" })];
      if (cmd === "decide") return [];
      return null;
    });
    await openApprovals();
    const card = (await screen.findByText("user1@contoso.example")).closest("li")!;
    expect(card.querySelector(".who")?.textContent).toBe("user1@contoso.example asks for membership of JIT Operators");
    expect(card.textContent).not.toContain("9a7e0c1d");
    expect(card.querySelector(".scope")).toBeNull();
    await fireEvent.click(within(card).getByRole("button", { name: "Approve" }));
    expect(await screen.findByText("Approved user1@contoso.example's request for membership of JIT Operators.")).toBeTruthy();
    expect(calls).toContainEqual(["decide", { request: "r-1", approve: true, justification: "Checked with the team" }]);
  });

  it("says so when nothing waits, and after the last decision", async () => {
    backend((cmd) => {
      if (cmd === "app_state") return bob;
      if (cmd === "approvals") return [request(1)];
      if (cmd === "decide") return [];
      return null;
    });
    await openApprovals();
    await fireEvent.click(await screen.findByRole("button", { name: "Approve" }));
    expect(await screen.findByText("Nothing else waits for your decision.")).toBeTruthy();
    cleanup();
    clearMocks();
    backend((cmd) => (cmd === "app_state" ? bob : cmd === "approvals" ? [] : null));
    await openApprovals();
    expect(await screen.findByText(/^Nothing waits for your decision/)).toBeTruthy();
  });

  it("shows placeholders while reading, and a way to try again when reading fails", async () => {
    let answer: () => unknown = () => new Promise(() => {});
    backend((cmd) => (cmd === "app_state" ? bob : cmd === "approvals" ? answer() : null));
    await openApprovals();
    expect(await screen.findByText("Reading the requests waiting for you…")).toBeTruthy();
    expect(document.querySelectorAll(".skeleton li").length).toBeGreaterThan(0);
    cleanup();
    answer = () => {
      throw { kind: "unavailable", data: { code: "unavailable", message: "PIM did not answer: try again in a minute." } };
    };
    await openApprovals();
    expect((await screen.findByRole("alert")).textContent).toBe("PIM did not answer: try again in a minute.");
    answer = () => [request(3)];
    await fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText("user3@contoso.example")).toBeTruthy();
    expect(screen.queryByRole("alert")).toBeNull();
  });
});

describe("history", () => {
  const entry = (seq: number, time: string, extra: Partial<Entry> = {}): Entry => ({
    seq,
    time,
    prev_hash: String(seq - 1),
    entry_hash: `hash-${seq}-0123456789abcdef`,
    who: "alice@contoso.example",
    what: "port_opened",
    vm: "jumpbox-win-01",
    port: 3389,
    outcome: "ok",
    ...extra,
  });
  // alice's state says it is noon on 27 November (local time), the entries span three days.
  const now = new Date(2026, 10, 27, 12, 0).toISOString();
  const at = (day: number, hour: number) => new Date(2026, 10, day, hour, 0).toISOString();
  const log = [
    entry(1, at(20, 9), { what: "role_requested", vm: null, port: null, role: "JIT Requester", justification: "Patch KB5034441" }),
    entry(2, at(26, 23)),
    entry(3, at(27, 8), { what: "approval_decided", who: "bob@contoso.example", vm: null, port: null, role: "JIT Requester", outcome: "denied" }),
    entry(4, at(27, 11)),
  ];

  async function openHistory(answer: () => unknown = () => log, calls: Array<[string, unknown]> = []) {
    backend((cmd) => {
      if (cmd === "app_state") return { ...alice, now };
      if (cmd === "history") return answer();
      if (cmd === "export_history") return "/home/alice/Downloads/jumpgate-history.csv";
      return null;
    }, calls);
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "History" }));
    return calls;
  }

  it("groups entries by day, newest first, one line each", async () => {
    await openHistory();
    await screen.findByRole("heading", { name: "Today" });
    const headings = [...document.querySelectorAll("section h3")].map((h) => h.textContent);
    expect(headings.slice(0, 2)).toEqual(["Today", "Yesterday"]);
    expect(headings).toHaveLength(3);
    expect(headings[2]).not.toMatch(/Today|Yesterday/);
    const today = document.querySelectorAll("section ul.entries")[0];
    expect([...today.querySelectorAll("li")].map((l) => l.getAttribute("data-seq"))).toEqual(["4", "3"]);
    expect(screen.getByRole("button", { name: /approval decided: JIT Requester/ }).textContent).toContain("denied");
  });

  it("names a VM by its name on the entry's line, and keeps its resource id in the details", async () => {
    const id = "/subscriptions/s/resourceGroups/rg-platform-engineering-jumpboxes-westeurope-production-001/providers/Microsoft.Compute/virtualMachines/jumpbox-win-01";
    await openHistory(() => [entry(5, at(27, 11), { vm: id })]);
    const line = await screen.findByRole("button", { name: /port opened/ });
    expect(line.querySelector(".summary")?.textContent).toBe("port opened: jumpbox-win-01 · port 3389");
    await fireEvent.click(line);
    expect(screen.getByText(id)).toBeTruthy();
  });

  it("expands an entry's details on click", async () => {
    await openHistory();
    const line = await screen.findByRole("button", { name: /role requested: JIT Requester/ });
    expect(line.getAttribute("aria-expanded")).toBe("false");
    expect(screen.queryByText("“Patch KB5034441”")).toBeNull();
    await fireEvent.click(line);
    expect(line.getAttribute("aria-expanded")).toBe("true");
    const details = document.getElementById(line.getAttribute("aria-controls")!)!;
    expect(details.textContent).toContain("“Patch KB5034441”");
    expect(details.textContent).toContain("alice@contoso.example");
    await fireEvent.click(line);
    expect(line.getAttribute("aria-expanded")).toBe("false");
    expect(document.getElementById("entry-1")).toBeNull();
  });

  it("exports from a small menu that the keyboard runs and Escape closes", async () => {
    const calls = await openHistory();
    const trigger = await screen.findByRole("button", { name: "Export" });
    expect(trigger.getAttribute("aria-haspopup")).toBe("menu");
    expect(screen.queryByRole("menu")).toBeNull();
    await fireEvent.click(trigger);
    expect(trigger.getAttribute("aria-expanded")).toBe("true");
    const csv = screen.getByRole("menuitem", { name: "Export CSV" });
    await waitFor(() => expect(document.activeElement).toBe(csv));
    await fireEvent.keyDown(csv, { key: "ArrowDown" });
    expect(document.activeElement).toBe(screen.getByRole("menuitem", { name: "Export JSON" }));
    await fireEvent.keyDown(document.activeElement!, { key: "Escape" });
    expect(screen.queryByRole("menu")).toBeNull();
    expect(document.activeElement).toBe(trigger);
    // Escape closed the menu only, not the popover.
    expect(calls.some(([c]) => c === "close_popover")).toBe(false);

    await fireEvent.keyDown(trigger, { key: "ArrowDown" });
    await fireEvent.click(await screen.findByRole("menuitem", { name: "Export CSV" }));
    expect(await screen.findByText("Saved to /home/alice/Downloads/jumpgate-history.csv")).toBeTruthy();
    expect(calls).toContainEqual(["export_history", { query: "", format: "csv" }]);
    expect(screen.queryByRole("menu")).toBeNull();
  });

  it("says what the empty history is for, and what a filter found nothing for", async () => {
    await openHistory(() => []);
    expect(await screen.findByText(/^Nothing here yet/)).toBeTruthy();
    await fireEvent.input(screen.getByRole("searchbox", { name: "Filter" }), { target: { value: "carol" } });
    expect(await screen.findByText("No entry matches “carol”.")).toBeTruthy();
  });

  it("shows placeholders while reading, and a way to try again when reading fails", async () => {
    let answer: () => unknown = () => new Promise(() => {});
    await openHistory(() => answer());
    expect(await screen.findByText("Reading your history…")).toBeTruthy();
    cleanup();
    clearMocks();
    answer = () => {
      throw { kind: "other", data: { code: "journal", message: "The journal at ~/.local/share/jumpgate is damaged: run jumpgate history --verify." } };
    };
    await openHistory(() => answer());
    expect((await screen.findByRole("alert")).textContent).toContain("journal");
    answer = () => log;
    await fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByRole("heading", { name: "Today" })).toBeTruthy();
  });
});

describe("help", () => {
  const check = (step: string, status: "pass" | "fail" | "skip", fix: string | null = null) => ({
    step,
    title: `Title of ${step}`,
    status,
    detail: `Detail of ${step}`,
    fix,
  });
  const win = alice.targets[0];

  async function runChecks(checks: ReturnType<typeof check>[], state: AppState = alice) {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return state;
      if (cmd === "diagnose") return { checks, bundle: "jumpgate doctor\n" };
      if (cmd === "sign_out") return signedOut;
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Help" }));
    expect(screen.getByText(/^Something not working\? Run the checks/)).toBeTruthy();
    await fireEvent.click(screen.getByRole("button", { name: "Run checks" }));
    await screen.findByText("Title of " + checks[0].step);
    return calls;
  }

  it("marks passed and failed steps with an icon and a word, and offers no button for a fix without an action", async () => {
    await runChecks([check("signed_in", "pass"), check("jit_policy", "fail", "Ask your admin to add a JIT policy."), check("port", "skip")]);
    const items = [...document.querySelectorAll("ol.checks li")];
    expect(items.map((li) => li.querySelector(".sr-only")?.textContent)).toEqual(["(passed)", "(failed)", "(skipped)"]);
    expect(items.every((li) => li.querySelector("svg[aria-hidden='true']"))).toBe(true);
    expect(items[1].textContent).toContain("Ask your admin to add a JIT policy.");
    expect(items[1].querySelector("button")).toBeNull();
  });

  it("turns a failed sign-in into a Sign in button", async () => {
    const calls = await runChecks([check("signed_in", "fail", "Sign in: run jumpgate signin."), check("token", "skip")]);
    await fireEvent.click(screen.getByRole("button", { name: "Sign in again" }));
    expect(await screen.findByRole("button", { name: "alice@contoso.example" })).toBeTruthy();
    expect(calls.some(([c]) => c === "sign_out")).toBe(true);
  });

  it("turns a missing role or rule into Request access for the checked VM", async () => {
    await runChecks([check("signed_in", "pass"), check("jit_role", "fail", "Request it: jumpgate connect jumpbox-win-01.")]);
    await fireEvent.click(screen.getByRole("button", { name: "Request access to jumpbox-win-01" }));
    expect(await screen.findByRole("heading", { name: "Connect to jumpbox-win-01 in rg" })).toBeTruthy();
    expect(screen.queryByText(/Filled in/)).toBeNull();
  });

  it("re-requests a rule open for another address with the Connect form prefilled", async () => {
    const open = { ...win, ports: [{ number: 22, max_minutes: 60 }, { number: 3389, max_minutes: 180 }], open: [{ port: 3389, source: "198.51.100.4", end: "2999-01-01T00:00:00Z" }] };
    await runChecks([check("open_rule", "fail", "Re-request it for your new address: jumpgate open jumpbox-win-01 --port 3389.")], { ...alice, targets: [open, alice.targets[1]] });
    await fireEvent.click(screen.getByRole("button", { name: "Re-request for your new address" }));
    expect(await screen.findByText("Filled in for your new address: check it, then press Connect.")).toBeTruthy();
    expect((screen.getByLabelText("Port") as HTMLSelectElement).value).toBe("3389");
  });

  it("shows placeholders while checking", async () => {
    backend((cmd) => (cmd === "app_state" ? alice : cmd === "diagnose" ? new Promise(() => {}) : null));
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Help" }));
    await fireEvent.click(screen.getByRole("button", { name: "Run checks" }));
    expect(await screen.findByText(/^Checking your sign-in/)).toBeTruthy();
    expect(screen.getByRole("button", { name: "Checking…" })).toBeTruthy();
  });
});

describe("loading, empty and error states", () => {
  it("shows placeholders while the app's state is read, never a blank panel", async () => {
    backend((cmd) => (cmd === "app_state" ? new Promise(() => {}) : null));
    render(App);
    expect(await screen.findByText("Reading your sign-in and access…")).toBeTruthy();
    expect(document.querySelector("main")?.querySelectorAll(".skeleton li").length).toBeGreaterThan(0);
  });

  it("says why the state could not be read, and tries again", async () => {
    let fail = true;
    backend((cmd) => {
      if (cmd !== "app_state") return null;
      if (fail) throw { kind: "unavailable", data: { code: "keychain", message: "The keychain is locked: unlock it, then try again." } };
      return alice;
    });
    render(App);
    expect((await screen.findByRole("alert")).textContent).toBe("The keychain is locked: unlock it, then try again.");
    expect(screen.queryByText("Reading your sign-in and access…")).toBeNull();
    fail = false;
    await fireEvent.click(screen.getByRole("button", { name: "Try again" }));
    expect(await screen.findByText("Signed in as alice@contoso.example")).toBeTruthy();
    expect(screen.queryByRole("alert")).toBeNull();
  });

  it("says what waits when nothing is open, and leads back to the jump boxes", async () => {
    backend((cmd) => (cmd === "app_state" ? { ...alice, pending: [{ request: "p-1", role: "JIT Requester", status: "PendingApproval" }] } : null));
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Active" }));
    expect(await screen.findByText(/Nothing is open yet: JIT Requester waits for approval/)).toBeTruthy();
    await fireEvent.click(screen.getByRole("button", { name: "Show the jump boxes" }));
    expect(await screen.findByRole("heading", { name: "Jump boxes" })).toBeTruthy();
  });
});

describe("tenants", () => {
  it("offers no choice with one tenant, and switches between several", async () => {
    const home: AppState = { ...alice, tenants: ["default", "fabrikam"] };
    const away: AppState = { ...alice, signed_in_as: "alice@contoso.example (guest)", tenant: "fabrikam", tenants: ["default", "fabrikam"], targets: [] };
    const calls = backend((cmd) => (cmd === "app_state" ? home : cmd === "switch_tenant" ? away : null));
    render(App);
    const select = (await screen.findByLabelText("Tenant")) as HTMLSelectElement;
    expect(select.value).toBe("default");
    expect(Array.from(select.options).map((o) => o.value)).toEqual(["default", "fabrikam"]);
    await fireEvent.change(select, { target: { value: "fabrikam" } });
    await screen.findByText("Signed in as alice@contoso.example (guest)");
    expect(calls.filter(([c]) => c === "switch_tenant").map(([, a]) => a)).toEqual([{ name: "fabrikam" }]);
    expect(((await screen.findByLabelText("Tenant")) as HTMLSelectElement).value).toBe("fabrikam");
    cleanup();
    backend((cmd) => (cmd === "app_state" ? alice : null));
    render(App);
    await screen.findByText("Signed in as alice@contoso.example");
    expect(screen.queryByLabelText("Tenant")).toBeNull();
  });
});

describe("active roles and group memberships", () => {
  const rg = "/subscriptions/s/resourceGroups/rg-jumpboxes";
  /** alice at noon (ARM's time) with a role and a group membership active. */
  const active = (roles: AppState["roles"], extra: Partial<AppState> = {}): AppState => ({
    ...alice,
    icon: "access_open",
    justification: { ...alice.justification, recent: ["Patch KB5034441"] },
    roles,
    ...extra,
  });
  const requester = (start: string | null): AppState["roles"][number] => ({ kind: "role", role: "JIT Requester", scope: rg, start, end: "2026-11-27T13:00:00Z" });
  const operators = (start: string | null): AppState["roles"][number] => ({
    kind: "group",
    role: "JIT Operators",
    scope: "9a7e0c1d-5b2f-4e8a-9c3d-1f2e3a4b5c6d",
    start,
    end: "2026-11-27T13:00:00Z",
  });
  /** The local HH:MM of an instant, as a person reads the clock. */
  const hhmm = (iso: string) => {
    const d = new Date(iso);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  };
  const card = (text: string) => screen.getByText(text).closest("li") as HTMLElement;

  async function openActive(state: AppState, handler: Handler = () => null) {
    const calls = backend((cmd, args) => (cmd === "app_state" ? state : handler(cmd, args)));
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Active" }));
    await screen.findByRole("heading", { name: "Active access" });
    return calls;
  }

  it("names a group membership as one, with a group badge, and a role with its scope", async () => {
    await openActive(active([requester("2026-11-27T11:00:00Z"), operators("2026-11-27T11:00:00Z")]));
    const group = card("Member of JIT Operators");
    expect(group.querySelector(".chip")?.textContent).toBe("group");
    expect(group.textContent).not.toContain("9a7e0c1d");
    const role = card("JIT Requester");
    expect(role.querySelector(".chip")).toBeNull();
    expect(within(role).getByText("at rg-jumpboxes").getAttribute("title")).toBe(rg);
  });

  it("names an Entra role as one, and extends it by its entra: name", async () => {
    const reader: AppState["roles"][number] = { kind: "entra_role", role: "Global Reader", scope: "/", start: "2026-11-27T11:00:00Z", end: "2026-11-27T13:00:00Z" };
    const calls = await openActive(active([reader]), (cmd) => (cmd === "extend" ? ({ message: "Global Reader extended.", state: active([reader]) } satisfies Renewed) : null));
    const entra = card("Global Reader");
    expect(entra.querySelector(".chip")?.textContent).toBe("Entra role");
    expect(entra.textContent).not.toContain("at /");
    await fireEvent.click(within(entra).getByRole("button", { name: "Extend" }));
    await waitFor(() =>
      expect(calls.filter(([c]) => c === "extend").map(([, a]) => (a as { what: unknown }).what)).toEqual([{ type: "role", role: "entra:Global Reader" }]),
    );
  });

  it("keeps End early disabled in the first 5 minutes, says from when, and allows it after", async () => {
    const calls = await openActive(active([requester("2026-11-27T11:30:00Z"), operators("2026-11-27T11:57:30Z")]), (cmd) =>
      cmd === "end_role" ? ({ message: "JIT Operators ended: Revoked.", state: active([requester("2026-11-27T11:30:00Z")]) } satisfies Renewed) : null,
    );
    const group = card("Member of JIT Operators");
    const end = within(group).getByRole("button", { name: "End early" }) as HTMLButtonElement;
    expect(end.disabled).toBe(true);
    // Activated at 11:57:30, so PIM lets it end from 12:02:30: said as the next whole minute.
    const line = within(group).getByText(`It can be ended from ${hhmm("2026-11-27T12:03:00Z")}: PIM lets no one end it in its first 5 minutes.`);
    expect(end.getAttribute("aria-describedby")).toBe(line.id);
    // The role activated half an hour ago may be ended now.
    const role = card("JIT Requester");
    expect((within(role).getByRole("button", { name: "End early" }) as HTMLButtonElement).disabled).toBe(false);
    expect(role.textContent).not.toContain("It can be ended from");

    // ARM's clock passes the five minutes.
    await emit("state", active([requester("2026-11-27T11:30:00Z"), operators("2026-11-27T11:57:30Z")], { now: "2026-11-27T12:02:31Z" }));
    await waitFor(() => expect(end.disabled).toBe(false));
    expect(group.textContent).not.toContain("It can be ended from");
    expect(end.getAttribute("aria-describedby")).toBeNull();
    await fireEvent.click(end);
    expect(await screen.findByText("JIT Operators ended: Revoked.")).toBeTruthy();
    expect(calls).toContainEqual(["end_role", { role: "group:JIT Operators", justification: "Patch KB5034441" }]);
  });

  const confirmation = "JIT Requester is active until 13:00. Renewing ends it first and asks the approver again: until then you do not hold it.";
  function renewals(calls: Array<[string, unknown]> = []): Handler {
    return (cmd, args) => {
      if (cmd !== "extend") return null;
      if (!args.confirmed) throw { kind: "conflict", data: { code: "confirm_renewal", message: confirmation } };
      return { message: "JIT Requester asked anew for 2h (PendingApproval).", state: active([]) } satisfies Renewed;
    };
  }

  it("asks before a renewal that ends the active role, and renews anew once confirmed", async () => {
    const calls = await openActive(active([requester("2026-11-27T11:00:00Z")]), renewals());
    await fireEvent.input(screen.getByLabelText("Extend by"), { target: { value: "2h" } });
    await fireEvent.click(within(card("JIT Requester")).getByRole("button", { name: "Extend" }));
    const dialog = await screen.findByRole("alertdialog", { name: "Extend JIT Requester?" });
    expect(dialog.textContent).toContain(confirmation);
    expect(document.getElementById(dialog.getAttribute("aria-describedby")!)?.textContent).toBe(confirmation);
    await waitFor(() => expect(document.activeElement).toBe(within(dialog).getByRole("button", { name: "Keep it" })));
    expect(screen.queryByRole("alert")).toBeNull();

    await fireEvent.click(within(dialog).getByRole("button", { name: "End and activate anew" }));
    expect(await screen.findByText("JIT Requester asked anew for 2h (PendingApproval).")).toBeTruthy();
    expect(screen.queryByRole("alertdialog")).toBeNull();
    const extends_ = calls.filter(([c]) => c === "extend").map(([, a]) => a);
    expect(extends_).toEqual([
      { what: { type: "role", role: "JIT Requester" }, duration: "2h", justification: "Patch KB5034441", confirmed: false },
      { what: { type: "role", role: "JIT Requester" }, duration: "2h", justification: "Patch KB5034441", confirmed: true },
    ]);
  });

  it("leaves the role as it is when the person keeps it, by button or Escape", async () => {
    const calls = await openActive(active([operators("2026-11-27T11:00:00Z")]), renewals());
    const extend = within(card("Member of JIT Operators")).getByRole("button", { name: "Extend" });
    await fireEvent.click(extend);
    const dialog = await screen.findByRole("alertdialog", { name: "Extend Member of JIT Operators?" });
    await fireEvent.click(within(dialog).getByRole("button", { name: "Keep it" }));
    await waitFor(() => expect(screen.queryByRole("alertdialog")).toBeNull());
    await waitFor(() => expect(document.activeElement).toBe(extend));
    expect(calls.filter(([c]) => c === "extend").map(([, a]) => a)).toEqual([
      { what: { type: "role", role: "group:JIT Operators" }, duration: "1h", justification: "Patch KB5034441", confirmed: false },
    ]);
    expect(screen.queryByText(/asked anew/)).toBeNull();
    expect(screen.getByText("Member of JIT Operators")).toBeTruthy();

    await fireEvent.click(extend);
    const again = await screen.findByRole("alertdialog");
    await fireEvent.keyDown(within(again).getByRole("button", { name: "Keep it" }), { key: "Escape" });
    await waitFor(() => expect(screen.queryByRole("alertdialog")).toBeNull());
    expect(calls.filter(([c]) => c === "extend").every(([, a]) => (a as { confirmed: boolean }).confirmed === false)).toBe(true);
    // Escape answered the question; the popover stays open.
    expect(calls.some(([c]) => c === "close_popover")).toBe(false);
  });

  it("extends a port as before, without asking", async () => {
    const open = { ...alice.targets[0], open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:30:00Z" }] };
    const calls = await openActive(active([], { targets: [open] }), (cmd) =>
      cmd === "extend" ? ({ message: "Port 3389 of jumpbox-win-01 is open for 203.0.113.7 for 1 h more.", state: active([], { targets: [open] }) } satisfies Renewed) : null,
    );
    await fireEvent.click(within(card("jumpbox-win-01 port 3389")).getByRole("button", { name: "Extend" }));
    expect(await screen.findByText("Port 3389 of jumpbox-win-01 is open for 203.0.113.7 for 1 h more.")).toBeTruthy();
    expect(calls).toContainEqual([
      "extend",
      { what: { type: "port", vm: open.vm_id, port: 3389 }, duration: "1h", justification: "Patch KB5034441", confirmed: false },
    ]);
    expect(screen.queryByRole("alertdialog")).toBeNull();
  });
});

describe("the ways to a jump box", () => {
  const win = alice.targets[0];
  const way = (label: string, via: string, extra: Partial<WayView> = {}): WayView => ({ kind: "role", label, via, certain: true, chosen: false, ...extra });
  const three: WayView[] = [
    way("JIT Requester at rg", "role:JIT Requester"),
    way("member of JIT Operators (JIT Requester at rg)", "group:9a7e", { kind: "group", chosen: true }),
    way("member of Platform Admins (what it grants is not known until it is active)", "group:41c2", { kind: "group", certain: false }),
  ];

  async function connectThrough(answer: () => unknown) {
    const calls = backend((cmd) => {
      if (cmd === "app_state") return alice;
      if (cmd === "ways") return answer();
      if (cmd === "connect") return new Promise<Connected>(() => {});
      return null;
    });
    render(App);
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" }));
    await screen.findByRole("heading", { name: "Connect to jumpbox-win-01 in rg" });
    await waitFor(() => expect(calls.some(([c]) => c === "ways")).toBe(true));
    return calls;
  }
  /** What the form sent as `via`. */
  async function sentVia(calls: Array<[string, unknown]>) {
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await pressConnect();
    await waitFor(() => expect(calls.some(([c]) => c === "connect")).toBe(true));
    return (calls.find(([c]) => c === "connect")?.[1] as { form: { via: string | null } }).form.via;
  }

  it("offers Through when several ways reach the VM, the one chosen before first, and sends the choice", async () => {
    const calls = await connectThrough(() => three);
    const group = await screen.findByRole("group", { name: "Through" });
    const radios = within(group).getAllByRole("radio") as HTMLInputElement[];
    expect(radios.map((r) => r.checked)).toEqual([false, true, false]);
    expect(within(group).getByRole("radio", { name: /Platform Admins.*\(may reach it\)$/ })).toBe(radios[2]);
    expect(group.textContent?.match(/may reach it/g)).toHaveLength(1);
    expect(calls.filter(([c]) => c === "ways")).toEqual([["ways", { vmId: win.vm_id }]]);
    await fireEvent.click(radios[2]);
    expect(await sentVia(calls)).toBe("group:41c2");
    // Asked once, whatever the form did meanwhile.
    expect(calls.filter(([c]) => c === "ways")).toHaveLength(1);
  });

  it("selects the first way when none was chosen before", async () => {
    const calls = await connectThrough(() => [three[0], three[2]]);
    const radios = within(await screen.findByRole("group", { name: "Through" })).getAllByRole("radio") as HTMLInputElement[];
    expect(radios.map((r) => r.checked)).toEqual([true, false]);
    expect(await sentVia(calls)).toBe("role:JIT Requester");
  });

  it("shows no choice with one way, and sends none", async () => {
    const calls = await connectThrough(() => [three[1]]);
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByRole("group", { name: "Through" })).toBeNull();
    expect(screen.queryByRole("radio")).toBeNull();
    expect(await sentVia(calls)).toBeNull();
  });

  it("goes on without a choice when the ways cannot be read", async () => {
    const calls = await connectThrough(() => {
      throw { kind: "unavailable", data: { code: "unavailable", message: "ARM did not answer." } };
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(screen.queryByRole("group", { name: "Through" })).toBeNull();
    expect(screen.queryByText("ARM did not answer.")).toBeNull();
    expect(await sentVia(calls)).toBeNull();
    expect(screen.queryByRole("alert")).toBeNull();
  });
});

describe("no standing access", () => {
  const seenVm = "/subscriptions/s/resourceGroups/rg-jumpboxes/providers/Microsoft.Compute/virtualMachines/jumpbox-win-07";
  const reach: Reachable = {
    ways: [
      {
        kind: "role",
        name: "JIT Requester",
        scopes: [{ scope: "/subscriptions/s/resourceGroups/rg-jumpboxes", name: "rg-jumpboxes" }, { scope: "/subscriptions/s", name: "Production" }],
        holds: [],
        activate: 'jumpgate activate "JIT Requester"',
      },
      { kind: "group", name: "JIT Operators", scopes: [], holds: [], activate: 'jumpgate activate "group:JIT Operators"' },
    ],
    recent: [{ vm: "jumpbox-win-07", vm_id: seenVm, seen: "2026-11-20T09:00:00Z" }],
    groups_note: null,
  };
  const dana: AppState = { ...alice, signed_in_as: "dana@contoso.example", targets: [], can_connect: true, reachable: reach };
  const wayCard = (name: string) => document.querySelector(`li[data-way="${name}"]`) as HTMLElement;

  function open(state: AppState, handler: Handler = () => null) {
    const calls = backend((cmd, args) => (cmd === "app_state" ? state : handler(cmd, args)));
    render(App);
    return calls;
  }

  it("says what could reach a jump box instead of an empty list", async () => {
    open(dana);
    expect(await screen.findByRole("heading", { name: "Nothing to connect to yet" })).toBeTruthy();
    expect(screen.getByText("Jump boxes appear here once a role or group membership that reaches them is active.")).toBeTruthy();
    expect(screen.queryByText(/No jump box yet/)).toBeNull();
    const role = wayCard("JIT Requester");
    expect(role.querySelector(".chip")?.textContent).toBe("role");
    expect(role.textContent).toContain("rg-jumpboxes, Production");
    expect(role.querySelector("code")?.textContent).toBe('jumpgate activate "JIT Requester"');
    const group = wayCard("JIT Operators");
    expect(group.querySelector(".chip")?.textContent).toBe("group");
    expect(group.textContent).toContain("what it reaches shows once it has been active");
    expect(group.querySelector("code")?.textContent).toBe('jumpgate activate "group:JIT Operators"');
    expect(screen.getByRole("heading", { name: "Jump boxes you could read before (not checked now)" })).toBeTruthy();
    expect(screen.getByText("jumpbox-win-07")).toBeTruthy();
    expect(document.querySelector("[data-groups-note]")).toBeNull();
  });

  it("activates a group membership from its card, shows the answer and applies the state", async () => {
    const after: AppState = { ...dana, pending: [{ request: "p-9", role: "JIT Operators", status: "PendingApproval" }] };
    const calls = open(dana, (cmd) =>
      cmd === "activate"
        ? ({ kind: "group", role: "JIT Operators", status: "PendingApproval", message: "JIT Operators: asked (PendingApproval). You are told when the approver decides.", state: after } satisfies Activated)
        : null,
    );
    await screen.findByRole("heading", { name: "Nothing to connect to yet" });
    const toggle = within(wayCard("JIT Operators")).getByRole("button", { name: "Activate…" });
    expect(toggle.getAttribute("aria-expanded")).toBe("false");
    await fireEvent.click(toggle);
    expect(toggle.getAttribute("aria-expanded")).toBe("true");
    const form = screen.getByRole("form", { name: "Activate JIT Operators" });
    expect(form.id).toBe(toggle.getAttribute("aria-controls"));
    expect((within(form).getByLabelText("Duration") as HTMLInputElement).value).toBe("1h");
    const why = within(form).getByLabelText("Justification") as HTMLInputElement;
    const suggestions = document.getElementById(why.getAttribute("list")!)!;
    expect([...suggestions.querySelectorAll("option")].map((o) => o.value)).toEqual(["Patch Tuesday maintenance"]);
    await fireEvent.input(why, { target: { value: "Rotate the RDP certificate" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Activate" }));
    expect(await screen.findByText("JIT Operators: asked (PendingApproval). You are told when the approver decides.")).toBeTruthy();
    expect(calls).toContainEqual(["activate", { role: "group:JIT Operators", duration: "1h", justification: "Rotate the RDP certificate" }]);
    expect(await screen.findByText("Waiting for approval: JIT Operators")).toBeTruthy();
    expect(screen.queryByRole("form", { name: "Activate JIT Operators" })).toBeNull();
  });

  it("activates a role by its name, and shows a refusal next to the form", async () => {
    let refuse = true;
    const calls = open(dana, (cmd) => {
      if (cmd !== "activate") return null;
      if (refuse) throw { kind: "policy", data: { code: "JustificationRule", message: "Not sent: 'bau' is too vague for your organisation." } };
      return { kind: "role", role: "JIT Requester", status: "Provisioned", message: "JIT Requester is active: its jump boxes appear once it takes effect.", state: { ...dana, reachable: null, targets: alice.targets } } satisfies Activated;
    });
    await screen.findByRole("heading", { name: "Nothing to connect to yet" });
    await fireEvent.click(within(wayCard("JIT Requester")).getByRole("button", { name: "Activate…" }));
    const form = screen.getByRole("form", { name: "Activate JIT Requester" });
    // No justification: said at once, nothing sent.
    await fireEvent.click(within(form).getByRole("button", { name: "Activate" }));
    expect(within(form).getByRole("alert").textContent).toBe("Say why you need access: the justification is required.");
    expect(calls.some(([c]) => c === "activate")).toBe(false);

    const why = within(form).getByLabelText("Justification");
    await fireEvent.input(why, { target: { value: "bau" } });
    await fireEvent.input(within(form).getByLabelText("Duration"), { target: { value: "30m" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Activate" }));
    await waitFor(() => expect(within(form).getByRole("alert").textContent).toBe("Not sent: 'bau' is too vague for your organisation."));
    expect(form.getAttribute("aria-describedby")).toBe(within(form).getByRole("alert").id);
    expect(calls).toContainEqual(["activate", { role: "JIT Requester", duration: "30m", justification: "bau" }]);

    refuse = false;
    await fireEvent.input(why, { target: { value: "Patch KB5034441" } });
    await fireEvent.click(within(form).getByRole("button", { name: "Activate" }));
    expect(await screen.findByText("JIT Requester is active: its jump boxes appear once it takes effect.")).toBeTruthy();
    // The state it answered reads the jump boxes now.
    expect(await screen.findByRole("button", { name: "Connect to jumpbox-win-01" })).toBeTruthy();
    expect(screen.queryByRole("heading", { name: "Nothing to connect to yet" })).toBeNull();
  });

  it("opens Connect for a jump box read before, as a card's Connect does", async () => {
    const calls = open(dana, (cmd) => (cmd === "remember_target" ? { favourites: [], recent: [seenVm] } : null));
    await fireEvent.click(await screen.findByRole("button", { name: "Connect to jumpbox-win-07" }));
    expect(await screen.findByRole("heading", { name: "Connect to jumpbox-win-07 in rg-jumpboxes" })).toBeTruthy();
    expect(calls).toContainEqual(["remember_target", { vmId: seenVm, what: "connected" }]);
    // Its ports are not known: the usual ones are offered, and the policy is read on Connect.
    expect([...(screen.getByLabelText("Port") as HTMLSelectElement).options].map((o) => o.value)).toEqual(["3389", "22"]);
    await waitFor(() => expect(calls).toContainEqual(["ways", { vmId: seenVm }]));
    await fireEvent.input(screen.getByLabelText("Justification"), { target: { value: "Patch KB5034441" } });
    await pressConnect();
    await waitFor(() => expect(calls.some(([c]) => c === "connect")).toBe(true));
    expect((calls.find(([c]) => c === "connect")?.[1] as { form: { vm: string } }).form.vm).toBe(seenVm);
    await fireEvent.click(screen.getByRole("button", { name: "Back to jump boxes" }));
    expect(await screen.findByRole("heading", { name: "Nothing to connect to yet" })).toBeTruthy();
  });

  it("never shows an empty view: no way, nothing read before, and why groups are missing", async () => {
    open({ ...dana, can_connect: false, reachable: { ways: [], recent: [], groups_note: "Group memberships are not shown: Jumpgate may not read Microsoft Graph here." } });
    expect(await screen.findByRole("heading", { name: "Nothing to connect to yet" })).toBeTruthy();
    expect(screen.getByText(/No role or group membership you may activate reaches a jump box/)).toBeTruthy();
    expect(screen.queryByRole("heading", { name: /Jump boxes you could read before/ })).toBeNull();
    const note = document.querySelector("[data-groups-note]")!;
    expect(note.textContent).toBe("Group memberships are not shown: Jumpgate may not read Microsoft Graph here.");
    expect(note.className).toContain("hint");
  });

  it("lists jump boxes read before without Connect for someone who cannot ask for access", async () => {
    open({ ...dana, can_connect: false });
    expect(await screen.findByText("jumpbox-win-07")).toBeTruthy();
    expect(screen.queryByRole("button", { name: /^Connect/ })).toBeNull();
  });
});

describe("a name several jump boxes share", () => {
  // The enterprise tenant's two jumpbox-win-01: one in rg-jumpboxes, one in another subscription.
  const win = vm("jumpbox-win-01");
  const legacy = { ...vm("jumpbox-win-01", "rg-legacy", [3389, 22], "2f6a8c0e-4b3d-4c5e-9a7b-8c9d0e1f2a34"), subscription: "Contoso Legacy" };
  const linux = vm("jumpbox-linux-01", "rg-jumpboxes", [22]);
  const both: AppState = { ...alice, targets: [win, linux, legacy] };
  const link = (vm: string): Intent => ({
    view: `connect:${vm}`,
    prefill: { vm, port: 3389, duration: "PT2H", justification: "Incident 4711" },
    refused: null,
  });

  function open(handler: Handler = () => null) {
    const calls = backend((cmd, args) => (cmd === "app_state" ? both : cmd === "ways" ? [] : handler(cmd, args)));
    render(App);
    return calls;
  }

  it("lists each with its resource group and subscription, fills nothing in, and opens the one chosen with the link's values", async () => {
    const calls = open((cmd) => (cmd === "connect" ? new Promise<Connected>(() => {}) : null));
    await screen.findByText("jumpbox-linux-01");
    // Any case: Azure compares VM names without it.
    await emit("intent", link("JUMPBOX-WIN-01"));
    expect(await screen.findByRole("heading", { name: "Which jumpbox-win-01?" })).toBeTruthy();
    const offered = [...document.querySelectorAll("ul.choices li")].map((li) => li.textContent?.replace(/\s+/g, " ").trim());
    expect(offered).toEqual([
      "jumpbox-win-01 Resource group rg-jumpboxes Subscription Contoso Jump Boxes Choose",
      "jumpbox-win-01 Resource group rg-legacy Subscription Contoso Legacy Choose",
    ]);
    // Nothing is filled in, asked or sent until one is chosen.
    expect(screen.queryByLabelText("Justification")).toBeNull();
    expect(screen.queryByText(/Filled in/)).toBeNull();
    expect(calls.some(([c]) => c === "check_connect" || c === "ways" || c === "connect")).toBe(false);

    await fireEvent.click(screen.getByRole("button", { name: "Choose jumpbox-win-01 in rg-legacy, Contoso Legacy" }));
    const heading = await screen.findByRole("heading", { name: "Connect to jumpbox-win-01 in rg-legacy (Contoso Legacy)" });
    // As text too, as a screen reader's browse mode and the end-to-end test read it.
    expect(heading.textContent?.replace(/\s+/g, " ").trim()).toBe("Connect to jumpbox-win-01 in rg-legacy (Contoso Legacy)");
    expect(screen.getByText(/Filled in from a link/)).toBeTruthy();
    expect((screen.getByLabelText("Justification") as HTMLInputElement).value).toBe("Incident 4711");
    expect((screen.getByLabelText(/Duration/) as HTMLInputElement).value).toBe("PT2H");
    expect((screen.getByLabelText("Port") as HTMLSelectElement).value).toBe("3389");
    await waitFor(() => expect(calls).toContainEqual(["ways", { vmId: legacy.vm_id }]));
    await pressConnect();
    await waitFor(() => expect(calls.some(([c]) => c === "connect")).toBe(true));
    expect((calls.find(([c]) => c === "connect")?.[1] as { form: { vm: string } }).form.vm).toBe(legacy.vm_id);
  });

  it("leaves the link's values behind when the person backs out of the choice", async () => {
    const calls = open();
    await screen.findByText("jumpbox-linux-01");
    await emit("intent", link("jumpbox-win-01"));
    await screen.findByRole("heading", { name: "Which jumpbox-win-01?" });
    await fireEvent.click(screen.getByRole("button", { name: "Back to jump boxes" }));
    expect(await screen.findByRole("heading", { name: "Jump boxes" })).toBeTruthy();
    await fireEvent.click(screen.getByRole("button", { name: "Connect to jumpbox-win-01 in rg-jumpboxes" }));
    await screen.findByRole("heading", { name: "Connect to jumpbox-win-01 in rg-jumpboxes (Contoso Jump Boxes)" });
    expect((screen.getByLabelText("Justification") as HTMLInputElement).value).toBe("");
    expect(screen.queryByText(/Filled in/)).toBeNull();
    expect(calls.some(([c]) => c === "connect")).toBe(false);
  });

  it("opens a name no other jump box has at once, its heading naming the resource group", async () => {
    open();
    await screen.findByText("jumpbox-linux-01");
    await emit("intent", { ...link("jumpbox-linux-01"), prefill: { vm: "jumpbox-linux-01", port: 22, duration: null, justification: "Incident 4711" } });
    expect(await screen.findByRole("heading", { name: "Connect to jumpbox-linux-01 in rg-jumpboxes" })).toBeTruthy();
    expect((screen.getByLabelText("Justification") as HTMLInputElement).value).toBe("Incident 4711");
    expect(screen.queryByRole("heading", { name: /^Which/ })).toBeNull();
  });

  it("opens the VM a link or the tray names by resource id directly", async () => {
    open();
    await screen.findByText("jumpbox-linux-01");
    await emit("intent", link(legacy.vm_id.toUpperCase()));
    expect(await screen.findByRole("heading", { name: "Connect to jumpbox-win-01 in rg-legacy (Contoso Legacy)" })).toBeTruthy();
    expect((screen.getByLabelText("Justification") as HTMLInputElement).value).toBe("Incident 4711");
    // The tray menu's entry: its resource id, nothing prefilled.
    await emit("intent", { view: `connect:${win.vm_id}`, prefill: null, refused: null });
    expect(await screen.findByRole("heading", { name: "Connect to jumpbox-win-01 in rg-jumpboxes (Contoso Jump Boxes)" })).toBeTruthy();
    expect((screen.getByLabelText("Justification") as HTMLInputElement).value).toBe("");
  });

  it("names where each is in the jump box list, in Help and in Active", async () => {
    const openWin = { ...win, open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:30:00Z" }] };
    const openLegacy = { ...legacy, open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:40:00Z" }] };
    backend((cmd) => (cmd === "app_state" ? { ...both, targets: [openWin, linux, openLegacy] } : null));
    render(App);
    await screen.findByText("jumpbox-linux-01");
    const card = (id: string) => document.querySelector(`ul.targets li[data-vm-id="${id}"]`) as HTMLElement;
    expect(card(win.vm_id).querySelector(".rg")?.textContent).toBe("rg-jumpboxes · Contoso Jump Boxes");
    expect(card(legacy.vm_id).querySelector(".rg")?.textContent).toBe("rg-legacy · Contoso Legacy");
    // A name no other has keeps its resource group alone.
    expect(card(linux.vm_id).querySelector(".rg")?.textContent).toBe("rg-jumpboxes");
    expect(within(card(legacy.vm_id)).getByRole("button", { name: "Connect to jumpbox-win-01 in rg-legacy" })).toBeTruthy();
    expect(within(card(win.vm_id)).getByRole("button", { name: "Favourite jumpbox-win-01 in rg-jumpboxes" })).toBeTruthy();

    await fireEvent.click(screen.getByRole("button", { name: "Help" }));
    const options = [...(screen.getByLabelText(/Check the way to/) as HTMLSelectElement).options].map((o) => o.textContent);
    expect(options).toEqual(["(no VM)", "jumpbox-win-01 (rg-jumpboxes)", "jumpbox-linux-01", "jumpbox-win-01 (rg-legacy)"]);

    await fireEvent.click(screen.getByRole("button", { name: "Active" }));
    expect(await screen.findByText("jumpbox-win-01 (rg-legacy) port 3389")).toBeTruthy();
    expect(screen.getByText("jumpbox-win-01 (rg-jumpboxes) port 3389")).toBeTruthy();
  });

  it("highlights only the port a notification is about, not one of a VM whose id starts the same", async () => {
    const short = { ...vm("jumpbox"), open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:30:00Z" }] };
    const longer = { ...vm("jumpbox-2"), open: [{ port: 3389, source: "203.0.113.7", end: "2026-11-27T12:40:00Z" }] };
    backend((cmd) => (cmd === "app_state" ? { ...alice, icon: "access_open", targets: [short, longer] } : null));
    render(App);
    await screen.findByText("jumpbox-2");
    // As a reminder's action opens it: `active:` and the access's key, in lower case.
    await emit("intent", { view: `active:port:${longer.vm_id.toLowerCase()}:3389`, prefill: null, refused: null });
    await screen.findByRole("heading", { name: "Active access" });
    const focused = [...document.querySelectorAll("li.card.focus strong")].map((s) => s.textContent);
    expect(focused).toEqual(["jumpbox-2 port 3389"]);
  });
});
