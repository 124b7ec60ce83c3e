using System.Text;
using Microsoft.AspNetCore.Http;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>
/// Issue 21 items 1, 2 and 13 with the PUBLISHED registry-push against hostile fake registries: credentials
/// never go to a foreign upload Location; success is claimed only after a HEAD shows the pushed manifest;
/// bad tags and ports are refused before any request; a huge token body is not read whole.
/// </summary>
public sealed class HostileRegistryTests
{
    private const string Creds = "pusher:s3cret-HOSTILE-pw";

    [Fact]
    public async Task A_foreign_upload_location_is_followed_without_credentials_monolithic_and_chunked()
    {
        await using var registry = await HostileRegistry.StartAsync();
        registry.RequireBasic = Creds;
        registry.ForeignUploads = true;
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(71, (5 << 20) / 2, 30_000));

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{registry.HostPort}/hostile/img:v1",
            "--dest", $"docker://{registry.HostPort}/hostile/chunked:v1", "--tls-verify=false", "--creds", Creds, "--chunk-size", "1M");

        var foreign = registry.ForeignRequests.ToList();
        Assert.Contains(foreign, f => f.Method == "PATCH");
        Assert.Contains(foreign, f => f.Method == "PUT");
        Assert.All(foreign, f => Assert.True(f.Authorization is null, $"{f.Method} {f.Target} on the foreign origin got Authorization"));
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("another origin", r.StdErr);
        Assert.True(registry.HasManifest("hostile/img", "v1"));
        Assert.DoesNotContain("s3cret-HOSTILE-pw", r.AllOutput);
    }

    [Fact]
    public async Task A_manifest_put_answered_201_without_storing_fails_with_exit_1_naming_the_destination()
    {
        await using var registry = await HostileRegistry.StartAsync();
        registry.DropManifests = true;
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(72, 40_000));

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{registry.HostPort}/lie/img:v1", "--tls-verify=false");

        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.DoesNotContain("sha256:", r.StdOut);
        var line = Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries), l => l.StartsWith("registry-push: error:", StringComparison.Ordinal));
        Assert.Contains($"docker://{registry.HostPort}/lie/img:v1", line);
        Assert.Contains($"does not serve manifest {image.ManifestDigest}", line);
        Assert.Contains("404", line);
    }

    [Fact]
    public async Task A_catch_all_server_answering_200_to_everything_is_not_a_successful_push()
    {
        await using var server = await TestServer.StartAsync(ctx =>
        {
            ctx.Response.StatusCode = 200;
            return Task.CompletedTask;
        });
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(73, 40_000));

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{server.HostPort}/any/img:v1", "--tls-verify=false");

        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.DoesNotContain("sha256:", r.StdOut);
        Assert.Contains("registry-push: error:", r.StdErr);
    }

    [Theory]
    [InlineData("v\u0101", "is not a valid tag")]
    [InlineData("-v1", "is not a valid tag")]
    public async Task An_invalid_tag_is_refused_before_any_request_with_exit_2(string tag, string message)
    {
        await using var registry = await HostileRegistry.StartAsync();
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(74, 40_000));

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{registry.HostPort}/tags/img:{tag}", "--tls-verify=false");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains(message, r.StdErr);
        Assert.Single(r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Empty(registry.Requests);
    }

    [Fact]
    public async Task A_port_out_of_range_is_bad_usage()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(75, 1000));

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", "docker://127.0.0.1:99999/x", "--tls-verify=false");

        Assert.True(r.ExitCode == 2, r.ToString());
        Assert.Contains("port '99999' is out of range", r.StdErr);
    }

    [Fact]
    public async Task A_100_MB_token_endpoint_body_is_refused_without_reading_it_whole()
    {
        long sent = 0;
        await using var server = await TestServer.StartAsync(async ctx =>
        {
            if (ctx.Request.Path.StartsWithSegments("/token"))
            {
                // chunked (no Content-Length): only reading stops it
                ctx.Response.StatusCode = 200;
                ctx.Response.ContentType = "application/json";
                var chunk = Encoding.ASCII.GetBytes("{\"token\":\"" + new string('a', (1 << 20) - 11));
                try
                {
                    for (int i = 0; i < 100; i++)
                    {
                        await ctx.Response.Body.WriteAsync(chunk, ctx.RequestAborted);
                        await ctx.Response.Body.FlushAsync(ctx.RequestAborted);
                        Interlocked.Add(ref sent, chunk.Length);
                        chunk = Encoding.ASCII.GetBytes(new string('a', 1 << 20));
                    }
                }
                catch (Exception e) when (e is OperationCanceledException or IOException or Microsoft.AspNetCore.Connections.ConnectionResetException)
                {
                }
                return;
            }
            ctx.Response.Headers.WWWAuthenticate = $"Bearer realm=\"http://127.0.0.1:{ctx.Connection.LocalPort}/token\",service=\"hostile\"";
            ctx.Response.StatusCode = 401;
        });
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(76, 1000));

        var r = await PushTests.Push("--source", $"oci:{image.LayoutPath}", "--dest", $"docker://{server.HostPort}/tok/img:v1", "--tls-verify=false",
            "--creds", Creds, "--retries", "0");

        Assert.True(r.ExitCode == 1, r.ToString());
        Assert.Contains("token endpoint", r.StdErr);
        Assert.Contains("more than 1 MiB", r.StdErr);
        Assert.True(Interlocked.Read(ref sent) < 50L << 20, $"{Interlocked.Read(ref sent)} bytes of the token body were read");
    }
}
