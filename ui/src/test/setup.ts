// Shared by every test file. The two files run side by side on a busy machine: waits for
// the page (a 250 ms fade, a render after a round trip) get 3 s, not testing-library's 1 s.
import { configure } from "@testing-library/svelte";

configure({ asyncUtilTimeout: 3000 });
