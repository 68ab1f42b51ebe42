// medsign mini program — its one setting: the public address of the hospital's DMZ gateway
// (`medsign gateway`, HTTPS, on a domain registered in the mini program's "request" domain list).
// Every call of the phone goes there, sealed end to end to the hospital's servers.
export default {
  server: 'https://sign.example',
};
