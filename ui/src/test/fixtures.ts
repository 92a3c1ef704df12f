// Test data the popover's test files share.
import type { AppState } from "../lib/api";

/** The demo, signed out. */
export const signedOut: AppState = {
  signed_in_as: null,
  demo: true,
  demo_users: ["alice@contoso.example", "bob@contoso.example"],
  icon: "signed_out",
  tooltip: "Jumpgate: signed out",
  now: "2026-11-27T12:00:00Z",
  targets: [],
  roles: [],
  pending: [],
  approvals: 0,
  approver: false,
  can_connect: false,
  justification: { templates: ["Patch Tuesday maintenance"], recent: [], approval_templates: ["Checked with the team"] },
  remembered: { favourites: [], recent: [] },
  start_at_login: false,
  azure_cli: false,
  reachable: null,
  tenant: "default",
  tenants: [],
};
