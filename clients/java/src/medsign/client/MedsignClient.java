package medsign.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;
import org.bouncycastle.crypto.digests.SM3Digest;
import org.bouncycastle.crypto.macs.HMac;
import org.bouncycastle.crypto.params.KeyParameter;

/**
 * A client of medsign's hospital-system API (/api/v1; docs/integration.md) on the JDK's HttpClient,
 * with SM3 from BouncyCastle (Debian: libbcprov-java).
 *
 * <p>{@link #signed} signs every request with HMAC-SM3 over method, path, query, timestamp, nonce and
 * SM3(body) with the key derived from the token's secret, which is never sent; {@link #bearer} sends
 * the token (HTTPS only). Creating calls (POST) carry an Idempotency-Key and are retried with it after
 * a connection failure, a 5xx or 409 idempotency_in_progress (only the creating calls the server
 * deduplicates: users, imports, flows; and GETs), so a flow whose answer was lost is made once. Answers are the server's JSON text; {@link #field} reads a top-level string field.
 */
public final class MedsignClient {
    /** The server's error envelope. */
    public static final class MedsignException extends IOException {
        public final int status;
        public final String code;
        public final String requestId;

        MedsignException(int status, String code, String message, String requestId) {
            super(status + " " + code + ": " + message + " (request " + requestId + ")");
            this.status = status;
            this.code = code;
            this.requestId = requestId;
        }
    }

    private static final SecureRandom RNG = new SecureRandom();
    /** The creating calls the server answers once per Idempotency-Key (so they are retried with it). */
    private static final java.util.Set<String> IDEMPOTENT = java.util.Set.of("/api/v1/users", "/api/v1/users/import", "/api/v1/sign-flows");
    private final String base;
    private final String appId;
    private final String token;
    private final byte[] key; // null: Bearer
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
    private int retries = 4;

    private MedsignClient(String base, String token, boolean signed) {
        if (!base.startsWith("http://") && !base.startsWith("https://")) {
            throw new IllegalArgumentException("the base URL must start with http(s)://");
        }
        int dot = token.indexOf('.');
        if (dot <= 0 || dot == token.length() - 1) {
            throw new IllegalArgumentException("the token must be app_id.secret");
        }
        this.base = base.replaceAll("/+$", "");
        this.appId = token.substring(0, dot);
        this.token = token;
        this.key = signed ? requestKey(token.substring(dot + 1)) : null;
    }

    /** A client that signs requests with HMAC-SM3 (the secret stays in this process). */
    public static MedsignClient signed(String base, String token) {
        return new MedsignClient(base, token, true);
    }

    /** A client that sends the token as a Bearer token. */
    public static MedsignClient bearer(String base, String token) {
        return new MedsignClient(base, token, false);
    }

    /** How often a failed attempt is tried again (default 4). */
    public MedsignClient retries(int n) {
        this.retries = n;
        return this;
    }

    static byte[] hmacSm3(byte[] key, byte[]... parts) {
        HMac mac = new HMac(new SM3Digest());
        mac.init(new KeyParameter(key));
        for (byte[] p : parts) mac.update(p, 0, p.length);
        byte[] out = new byte[mac.getMacSize()];
        mac.doFinal(out, 0);
        return out;
    }

    static String sm3Hex(byte[] data) {
        SM3Digest d = new SM3Digest();
        d.update(data, 0, data.length);
        byte[] out = new byte[32];
        d.doFinal(out, 0);
        return HexFormat.of().formatHex(out);
    }

    /** The request-signing key an app derives from its secret. */
    public static byte[] requestKey(String secret) {
        return hmacSm3(secret.getBytes(StandardCharsets.UTF_8), "medsign/api-hmac/v1".getBytes(StandardCharsets.UTF_8));
    }

    /** X-Signature of a request. */
    public static String signRequest(byte[] key, String method, String path, String query, String ts, String nonce, byte[] body) {
        String text = method + "\n" + path + "\n" + query + "\n" + ts + "\n" + nonce + "\n" + sm3Hex(body);
        return HexFormat.of().formatHex(hmacSm3(key, text.getBytes(StandardCharsets.UTF_8)));
    }

    /** Is a webhook genuine? (X-Medsign-Timestamp, the raw body, X-Medsign-Signature; the app token or its secret.) */
    public static boolean webhookIsSigned(String tokenOrSecret, String timestamp, byte[] body, String signature) {
        int dot = tokenOrSecret.indexOf('.');
        String secret = dot >= 0 ? tokenOrSecret.substring(dot + 1) : tokenOrSecret;
        byte[] want = HexFormat.of().formatHex(hmacSm3(requestKey(secret), timestamp.getBytes(StandardCharsets.UTF_8),
            new byte[] {'\n'}, body)).getBytes(StandardCharsets.US_ASCII);
        return MessageDigest.isEqual(want, signature.trim().toLowerCase().getBytes(StandardCharsets.US_ASCII));
    }

    /** A top-level string field of a JSON object (null when absent or not a string). */
    public static String field(String json, String name) {
        int j = valueAt(json, name);
        if (j < 0 || json.charAt(j) != '"') return null;
        int close = stringEnd(json, j);
        return close < 0 ? null : unescape(json.substring(j + 1, close));
    }

    /**
     * The object value (its JSON text) of the key {@code name} of the outer object, or null: e.g. a
     * flow's {@code ticket}, whose {@code deep_link} {@link #field} then reads.
     */
    public static String object(String json, String name) {
        int j = valueAt(json, name);
        if (j < 0 || json.charAt(j) != '{') return null;
        // to the brace that closes it, strings skipped
        int d = 0;
        for (int k = j; k < json.length(); k++) {
            char x = json.charAt(k);
            if (x == '"') {
                k = stringEnd(json, k);
                if (k < 0) return null;
            } else if (x == '{' || x == '[') d++;
            else if ((x == '}' || x == ']') && --d == 0) return json.substring(j, k + 1);
        }
        return null;
    }

    /** Where the value of the outer object's key {@code name} starts, or -1. */
    private static int valueAt(String json, String name) {
        int depth = 0;
        for (int i = 0; i < json.length(); i++) {
            char c = json.charAt(i);
            if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') depth--;
            else if (c == '"') {
                int end = stringEnd(json, i);
                if (end < 0) return -1;
                // a key of the outer object: a string at depth 1 followed by ':'
                int j = end + 1;
                while (j < json.length() && Character.isWhitespace(json.charAt(j))) j++;
                if (depth == 1 && j < json.length() && json.charAt(j) == ':' && json.substring(i + 1, end).equals(name)) {
                    j++;
                    while (j < json.length() && Character.isWhitespace(json.charAt(j))) j++;
                    return j < json.length() ? j : -1;
                }
                i = end;
            }
        }
        return -1;
    }

    /** The index of the quote closing the string that opens at {@code start}, or -1 (unterminated). */
    private static int stringEnd(String s, int start) {
        for (int i = start + 1; i < s.length(); i++) {
            if (s.charAt(i) == '\\') i++;
            else if (s.charAt(i) == '"') return i;
        }
        return -1;
    }

    private static String unescape(String s) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c != '\\' || i + 1 >= s.length()) {
                b.append(c);
                continue;
            }
            char e = s.charAt(++i);
            switch (e) {
                case 'n' -> b.append('\n');
                case 't' -> b.append('\t');
                case 'r' -> b.append('\r');
                case 'b' -> b.append('\b');
                case 'f' -> b.append('\f');
                case 'u' -> {
                    String hex4 = s.substring(i + 1, Math.min(i + 5, s.length()));
                    if (hex4.length() == 4 && hex4.chars().allMatch(ch -> Character.digit(ch, 16) >= 0)) {
                        b.append((char) Integer.parseInt(hex4, 16));
                        i += 4;
                    } else {
                        b.append('\uFFFD');
                    }
                }
                default -> b.append(e);
            }
        }
        return b.toString();
    }

    private static String hex(int n) {
        byte[] b = new byte[n];
        RNG.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private static String segment(String s) {
        if (s.isEmpty() || s.equals(".") || s.equals("..")) throw new IllegalArgumentException("not usable in a path: " + s);
        return URLEncoder.encode(s, StandardCharsets.UTF_8).replace("+", "%20");
    }

    /** The request, retried as the class says; a success's response with its body unread. */
    private HttpResponse<InputStream> send(String method, String path, String query, String json)
            throws IOException, InterruptedException {
        byte[] body = json == null ? new byte[0] : json.getBytes(StandardCharsets.UTF_8);
        // the path and query as they will be sent (non-ASCII escaped), which the signature covers
        URI uri = URI.create(URI.create(base + path + (query.isEmpty() ? "" : "?" + query)).toASCIIString());
        String sentPath = uri.getRawPath(), sentQuery = uri.getRawQuery() == null ? "" : uri.getRawQuery();
        // only the creating calls the server answers once per Idempotency-Key are retried
        String idem = method.equals("POST") && IDEMPOTENT.contains(sentPath) ? hex(16) : null;
        boolean retriable = idem != null || method.equals("GET");
        for (int attempt = 0; ; attempt++) {
            HttpRequest.Builder b = HttpRequest.newBuilder(uri)
                .timeout(Duration.ofSeconds(120))
                .method(method, body.length == 0 ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(body));
            if (body.length > 0) b.header("Content-Type", "application/json");
            if (idem != null) b.header("Idempotency-Key", idem);
            if (key == null) {
                b.header("Authorization", "Bearer " + token);
            } else {
                String ts = Long.toString(System.currentTimeMillis() / 1000), nonce = hex(12);
                b.header("X-App-Id", appId).header("X-Timestamp", ts).header("X-Nonce", nonce)
                    .header("X-Signature", signRequest(key, method, sentPath, sentQuery, ts, nonce, body));
            }
            HttpResponse<InputStream> r;
            try {
                r = http.send(b.build(), HttpResponse.BodyHandlers.ofInputStream());
            } catch (IOException e) {
                if (retriable && attempt < retries) {
                    Thread.sleep(500L << Math.min(attempt, 5));
                    continue;
                }
                throw e;
            }
            if (r.statusCode() / 100 == 2) return r;
            String text;
            try (InputStream in = r.body()) {
                text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
            }
            String code = field(text, "code");
            String message = field(text, "message"), requestId = field(text, "request_id");
            MedsignException e = new MedsignException(r.statusCode(), code == null ? "" : code,
                message == null ? text : message, requestId == null ? "" : requestId);
            boolean again = r.statusCode() >= 500 || (r.statusCode() == 409 && "idempotency_in_progress".equals(code));
            if (again && retriable && attempt < retries) {
                Thread.sleep(500L << attempt);
                continue;
            }
            throw e;
        }
    }

    /** Any call; {@code query} already percent-encoded (it is signed as sent); the JSON answer. */
    public String call(String method, String path, String query, String json) throws IOException, InterruptedException {
        try (InputStream in = send(method, path, query, json).body()) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }

    /** Create users, all or nothing (R7.4.1); {@code json}: an array of users. */
    public String createUsers(String json) throws IOException, InterruptedException {
        return call("POST", "/api/v1/users", "", json);
    }

    /** One user with certificate and signature image (R7.4.2). */
    public String user(String employeeNo) throws IOException, InterruptedException {
        return call("GET", "/api/v1/users/" + segment(employeeNo), "", null);
    }

    /** Start a flow (R7.4.5–R7.4.8); retried safely. */
    public String createFlow(String json) throws IOException, InterruptedException {
        return call("POST", "/api/v1/sign-flows", "", json);
    }

    /** A flow by id or document number (R7.4.9). */
    public String flow(String idOrDocNo) throws IOException, InterruptedException {
        return call("GET", "/api/v1/sign-flows/" + segment(idOrDocNo), "", null);
    }

    /** Revoke a flow that has not completed (R7.4.10). */
    public String revoke(String idOrDocNo, String reason) throws IOException, InterruptedException {
        String body = "{\"reason\":" + jsonString(reason) + "}";
        return call("POST", "/api/v1/sign-flows/" + segment(idOrDocNo) + "/revoke", "", body);
    }

    /** {@code s} as a JSON string literal. */
    public static String jsonString(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    /** Verify a signed PDF (R7.4.12); the report. */
    public String verifyFile(byte[] pdf) throws IOException, InterruptedException {
        return call("POST", "/api/v1/verify/file", "", "{\"file\":\"" + java.util.Base64.getEncoder().encodeToString(pdf) + "\"}");
    }

    /** Write a completed flow's signed file to {@code out} as it arrives (R7.4.13; {@code signature}: "p7s" or null); the bytes written. */
    public long download(String idOrDocNo, String signature, OutputStream out) throws IOException, InterruptedException {
        String query = signature == null ? "" : "signature=" + segment(signature);
        try (InputStream in = send("GET", "/api/v1/sign-flows/" + segment(idOrDocNo) + "/file", query, null).body()) {
            return in.transferTo(out);
        }
    }
}
