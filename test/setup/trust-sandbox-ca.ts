import { trustSandboxCa } from "../../src/sandbox/tls.ts";

// Tests talk to the HTTPS simulators through our real clients (fetch, MSAL, gitbeaker).
trustSandboxCa();
