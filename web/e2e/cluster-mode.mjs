// Imported before web/e2e/h5.test.mjs by h5-cluster.test.mjs (module bodies run in import order):
// the H5 scenario then runs in the hospital's layout. (A global, not an environment variable:
// medsign refuses MEDSIGN_* variables it does not know, and the servers inherit the environment.)
globalThis.medsignH5Cluster = true;
