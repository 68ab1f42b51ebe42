// R7.4.1, R7.4.2, R7.4.5, R7.4.7, R7.4.8 (with MEDSIGN_DOCTOR), R7.4.9, R7.4.10, R7.4.12, R7.4.13 and webhooks with the Java client: MEDSIGN_URL and
// MEDSIGN_TOKEN (scopes users:read users:write sign verify). Run by crates/cli/tests/client.rs
// against a live server: javac -cp /usr/share/java/bcprov.jar -d out src/medsign/client/*.java Example.java
import java.io.ByteArrayOutputStream;
import medsign.client.MedsignClient;
import medsign.client.MedsignClient.MedsignException;

public class Example {
    static void check(boolean ok, String what) {
        if (!ok) throw new IllegalStateException(what);
    }

    public static void main(String[] args) throws Exception {
        String token = System.getenv("MEDSIGN_TOKEN");
        MedsignClient c = MedsignClient.signed(System.getenv().getOrDefault("MEDSIGN_URL", "https://sign.hospital.example"), token);
        c.createUsers("[{\"employee_no\":\"9101\",\"name\":\"蒋医生\"}]");
        check("蒋医生".equals(MedsignClient.field(c.user("9101"), "name")), "the user");
        // a query typed unescaped is signed as it is sent
        check(c.call("GET", "/api/v1/users", "q=蒋", null).contains("\"total\":1"), "the search");
        // the field reader: nested fields are not the answer's, broken input gives null
        check("a".equals(MedsignClient.field("{\"x\":{\"state\":\"b\"},\"state\":\"a\"}", "state")), "top level only");
        check(MedsignClient.field("{\"code\":\"", "code") == null && MedsignClient.field("{\"code\":\"abc", "code") == null, "truncated");
        check("{\"a\":\"}\",\"b\":[1]}".equals(MedsignClient.object("{\"t\":{\"a\":\"}\",\"b\":[1]},\"u\":2}", "t")), "an object, braces in strings skipped");
        check(MedsignClient.object("{\"t\":{\"a\":1", "t") == null && MedsignClient.object("{\"t\":\"x\"}", "t") == null
            && MedsignClient.object("{\"t\":", "t") == null, "no object, or a truncated one");
        try {
            c.user("no-such-user");
            check(false, "a missing user was found");
        } catch (MedsignException e) {
            check(e.status == 404 && e.code.equals("not_found") && !e.requestId.isEmpty(), e.getMessage());
        }
        // a lab report from the template, sealed at once; downloaded by its number and verified
        String lab = "{\"hospital\":\"某县人民医院\",\"patient_name\":\"王小明\",\"gender\":\"男\",\"age\":\"45岁\",\"patient_id\":\"P9101\","
            + "\"sample_no\":\"S9101\",\"department\":\"内科\",\"specimen\":\"血清\",\"items\":[{\"code\":\"GLU\",\"name\":\"葡萄糖\","
            + "\"result\":\"5.1\",\"unit\":\"mmol/L\",\"reference\":\"3.9–6.1\"}]}";
        String f = c.createFlow("{\"kind\":\"file\",\"title\":\"检验报告单 S9101\",\"template_id\":\"lab-report\",\"data\":" + lab
            + ",\"signers\":[{\"seal\":\"hospital\",\"field\":\"lab_seal\"}]}");
        check("completed".equals(MedsignClient.field(f, "state")), f);
        ByteArrayOutputStream pdf = new ByteArrayOutputStream();
        c.download(MedsignClient.field(f, "doc_no"), null, pdf);
        check(new String(pdf.toByteArray(), 0, 5).equals("%PDF-"), "a PDF");
        check("TOTAL_PASSED".equals(MedsignClient.field(c.verifyFile(pdf.toByteArray()), "indication")), "verified");
        // a scan-sign not done yet: waiting with its ticket, then revoked by its number
        String s = c.createFlow("{\"kind\":\"data\",\"title\":\"病程记录 ZY9101\",\"content\":\"……\",\"signers\":[{\"employee_no\":\"9101\",\"mode\":\"scan\"}]}");
        String no = MedsignClient.field(s, "doc_no");
        check("signing".equals(MedsignClient.field(c.flow(no), "state")), s);
        check("revoked".equals(MedsignClient.field(c.revoke(no, "示例 / example\n\"quoted\""), "state")), "revoked");
        // a data flow with a webhook to this program (the JDK's own HTTP server on loopback), checked
        java.util.concurrent.BlockingQueue<String[]> hooks = new java.util.concurrent.LinkedBlockingQueue<>();
        com.sun.net.httpserver.HttpServer hs = com.sun.net.httpserver.HttpServer.create(new java.net.InetSocketAddress("127.0.0.1", 0), 0);
        hs.createContext("/medsign", x -> {
            byte[] b = x.getRequestBody().readAllBytes();
            hooks.add(new String[] {x.getRequestHeaders().getFirst("X-Medsign-Timestamp"), new String(b, "UTF-8"),
                x.getRequestHeaders().getFirst("X-Medsign-Signature")});
            x.sendResponseHeaders(204, -1);
            x.close();
        });
        hs.start();
        c.createFlow("{\"kind\":\"data\",\"title\":\"检验报告 S9102\",\"content\":\"WBC 6.1\",\"signers\":[{\"seal\":\"hospital\"}],"
            + "\"callback_url\":\"http://127.0.0.1:" + hs.getAddress().getPort() + "/medsign\"}");
        String[] h = hooks.poll(30, java.util.concurrent.TimeUnit.SECONDS);
        check(h != null, "no webhook");
        check(MedsignClient.webhookIsSigned(token, h[0], h[1].getBytes("UTF-8"), h[2]), "an unsigned webhook");
        check(!MedsignClient.webhookIsSigned(token, h[0], (h[1] + " ").getBytes("UTF-8"), h[2]), "a changed body passed");
        hs.stop(0);
        // R7.4.8 a prescription scan-signed by a doctor whose phone is bound (MEDSIGN_DOCTOR): the
        // ticket's link (its QR code goes on the PC screen) is printed; the doctor scans it while
        // this polls; then the signed PDF is downloaded and verified
        String doctor = System.getenv("MEDSIGN_DOCTOR");
        if (doctor != null) {
            String rx = "{\"hospital\":\"某县人民医院\",\"category\":\"普通\",\"fee_type\":\"医保\",\"department\":\"内科\","
                + "\"outpatient_no\":\"MZ9103\",\"patient_name\":\"王小明\",\"gender\":\"男\",\"age\":\"45岁\",\"diagnosis\":\"上呼吸道感染\","
                + "\"amount\":\"¥56.80\",\"items\":[{\"drug\":\"阿莫西林胶囊 0.25g×24粒\",\"dosage\":\"0.5g\",\"usage\":\"口服 每日三次\",\"quantity\":\"2盒\"}]}";
            String rxFlow = c.createFlow("{\"kind\":\"file\",\"title\":\"门诊处方笺 MZ9103\",\"template_id\":\"outpatient-prescription\",\"data\":" + rx
                + ",\"signers\":[{\"employee_no\":\"" + doctor + "\",\"mode\":\"scan\",\"field\":\"doctor\"},{\"seal\":\"hospital\",\"field\":\"hospital_seal\"}]}");
            String id = MedsignClient.field(rxFlow, "id");
            System.out.println("scan: " + MedsignClient.field(MedsignClient.object(rxFlow, "ticket"), "deep_link"));
            System.out.flush();
            String state = "signing";
            for (int i = 0; i < 240 && ("signing".equals(state) || "pending".equals(state)); i++) {
                Thread.sleep(500);
                state = MedsignClient.field(c.flow(id), "state");
            }
            check("completed".equals(state), "the prescription was not signed: " + state);
            ByteArrayOutputStream signed = new ByteArrayOutputStream();
            c.download(id, null, signed);
            check("TOTAL_PASSED".equals(MedsignClient.field(c.verifyFile(signed.toByteArray()), "indication")), "the signed PDF verifies");
        }
        System.out.println("ok: " + no);
    }
}
