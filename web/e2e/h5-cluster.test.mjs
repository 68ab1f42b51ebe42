// node:test — the H5 app's whole scenario (web/e2e/h5.test.mjs) in the hospital's layout (issue
// #17): two `medsign serve` on one PostgreSQL, two `medsign gateway`, each server tunnelled to
// both, a load balancer in front of the gateways (a TCP stand-in for HAProxy or nginx, see
// web/wasm/testkit/server.mjs), the phone's Chromium reaching that and nothing else, the HIS
// reaching only the servers; then a server and a gateway are killed with SIGKILL and the phone
// signs on. Needs PostgreSQL ($MEDSIGN_TEST_POSTGRES_URL, which scripts/test sets): without it
// the tests are skipped, and under CI they fail.
import './cluster-mode.mjs';
import './h5.test.mjs';
