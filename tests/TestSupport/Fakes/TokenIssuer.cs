using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;


namespace ModelCar.TestSupport;

/// <summary>
/// A docker-token-spec issuer on 127.0.0.1 for the registry's <c>auth: token</c>: checks Basic
/// credentials, answers RS256 JWTs whose x5c header holds its self-signed certificate (the
/// registry's rootcertbundle), granting the requested repository actions.
/// </summary>
public sealed class TokenIssuer : IAsyncDisposable
{
    public const string Service = "modelcar-test-registry";
    public const string Issuer = "modelcar-test-issuer";
    private readonly RSA _key = RSA.Create(2048);
    private readonly X509Certificate2 _cert;
    private readonly string _user;
    private readonly string _password;
    private TestServer? _server;
    private int _requests;

    private TokenIssuer(string user, string password)
    {
        _user = user;
        _password = password;
        var req = new CertificateRequest("CN=modelcar-token-issuer", _key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyCertSign, false));
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, false));
        _cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    public string RootCertPem => _cert.ExportCertificatePem();

    public string Realm => $"http://{_server!.HostPort}/token";

    public int Requests => _requests;

    public ConcurrentLog Scopes { get; } = new();

    public int ExpiresIn { get; set; } = 300;

    public static async Task<TokenIssuer> StartAsync(string user, string password)
    {
        var issuer = new TokenIssuer(user, password);
        issuer._server = await TestServer.StartAsync(issuer.HandleAsync);
        return issuer;
    }

    private async Task HandleAsync(HttpContext ctx)
    {
        Interlocked.Increment(ref _requests);
        var auth = ctx.Request.Headers.Authorization.ToString();
        var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{_user}:{_password}"));
        if (auth != expected)
        {
            ctx.Response.StatusCode = 401;
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync("""{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}""");
            return;
        }
        var access = new JsonArray();
        foreach (var scope in ctx.Request.Query["scope"])
        {
            Scopes.Add(scope!);
            var parts = scope!.Split(':');
            if (parts.Length == 3)
            {
                access.Add(new JsonObject
                {
                    ["type"] = parts[0],
                    ["name"] = parts[1],
                    ["actions"] = new JsonArray(parts[2].Split(',').Select(a => (JsonNode)JsonValue.Create(a)!).ToArray()),
                });
            }
        }
        long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = new JsonObject
        {
            ["typ"] = "JWT",
            ["alg"] = "RS256",
            ["x5c"] = new JsonArray(JsonValue.Create(Convert.ToBase64String(_cert.RawData))),
        };
        var claims = new JsonObject
        {
            ["iss"] = Issuer,
            ["sub"] = _user,
            ["aud"] = ctx.Request.Query["service"].ToString(),
            ["exp"] = now + ExpiresIn,
            ["nbf"] = now - 30,
            ["iat"] = now,
            ["jti"] = Guid.NewGuid().ToString("N"),
            ["access"] = access,
        };
        var signingInput = B64(Encoding.UTF8.GetBytes(header.ToJsonString())) + "." + B64(Encoding.UTF8.GetBytes(claims.ToJsonString()));
        var signature = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var token = signingInput + "." + B64(signature);
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(JsonSerializer.Serialize(new { token, expires_in = ExpiresIn, issued_at = DateTimeOffset.UtcNow.ToString("o") }));
    }

    private static string B64(byte[] data) => Convert.ToBase64String(data).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
        _cert.Dispose();
        _key.Dispose();
    }
}

public sealed class ConcurrentLog
{
    private readonly System.Collections.Concurrent.ConcurrentQueue<string> _items = new();

    public void Add(string s) => _items.Enqueue(s);

    public IReadOnlyList<string> Items => _items.ToArray();
}
