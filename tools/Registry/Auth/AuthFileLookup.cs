using System.Diagnostics;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using ModelCar.Common;

namespace ModelCar.Registry.Auth;

/// <summary>
/// Credential lookup as containers-auth.json(5) describes it. Files, in order: the
/// <c>--authfile</c> files in the order given (each one required: a missing or unreadable one is an
/// error), else <c>$REGISTRY_AUTH_FILE</c> (only that file; a warning if it is missing), else
/// <c>$XDG_RUNTIME_DIR/containers/auth.json</c>, <c>$XDG_CONFIG_HOME/containers/auth.json</c>
/// (default ~/.config), <c>$DOCKER_CONFIG/config.json</c> or <c>~/.docker/config.json</c>,
/// and <c>~/.dockercfg</c> (all optional). Each file may be an auth.json / config.json
/// (<c>{"auths": {…}}</c>) or a legacy <c>.dockercfg</c> (<c>{"host": {"auth": …}}</c>, what
/// OpenShift's <c>&lt;sa&gt;-dockercfg-*</c> secrets hold), told apart by content. In each file a
/// <c>credHelpers</c> entry for the host comes first (<c>docker-credential-NAME get</c>), then
/// <c>auths</c> keys from the most specific (<c>host/ns/repo</c>) to the host, then
/// <c>credsStore</c>. The first file with a match wins: files are merged in order.
/// </summary>
public sealed class AuthFileLookup : ICredentialProvider
{
    private readonly IReadOnlyList<AuthFileCandidate> _files;
    private readonly ILogger _logger;
    private readonly Func<string, string, string?> _runHelper;

    public AuthFileLookup(IReadOnlyList<AuthFileCandidate> files, ILogger logger, Func<string, string, string?>? runHelper = null)
    {
        _files = files;
        _logger = logger;
        _runHelper = runHelper ?? RunCredentialHelper;
    }

    public IReadOnlyList<AuthFileCandidate> Files => _files;

    /// <summary>
    /// The files to search: the --authfile values in order (empty values are ignored, so an unbound
    /// optional Tekton workspace can pass ""), else the environment's. Without HOME (an arbitrary
    /// UID in a pod) the home-relative locations are left out.
    /// </summary>
    public static IReadOnlyList<AuthFileCandidate> CandidateFiles(IReadOnlyList<string>? authFiles, Func<string, string?> env)
    {
        var named = (authFiles ?? []).Where(f => !string.IsNullOrEmpty(f)).Select(f => new AuthFileCandidate(f, Required: true)).ToList();
        if (named.Count > 0)
        {
            return named;
        }
        if (env("REGISTRY_AUTH_FILE") is { Length: > 0 } fromEnv)
        {
            return [new AuthFileCandidate(fromEnv, Required: false, NamedBy: "REGISTRY_AUTH_FILE")];
        }
        var home = env("HOME") is { Length: > 0 } h ? h : null;
        var files = new List<AuthFileCandidate>();
        if (env("XDG_RUNTIME_DIR") is { Length: > 0 } runtime)
        {
            files.Add(new(Path.Combine(runtime, "containers", "auth.json"), false));
        }
        if ((env("XDG_CONFIG_HOME") is { Length: > 0 } x ? x : home is null ? null : Path.Combine(home, ".config")) is { } configHome)
        {
            files.Add(new(Path.Combine(configHome, "containers", "auth.json"), false));
        }
        if ((env("DOCKER_CONFIG") is { Length: > 0 } dc ? Path.Combine(dc, "config.json") : home is null ? null : Path.Combine(home, ".docker", "config.json")) is { } dockerConfig)
        {
            files.Add(new(dockerConfig, false));
        }
        if (home is not null)
        {
            files.Add(new(Path.Combine(home, ".dockercfg"), false));
        }
        return files;
    }

    /// <summary>
    /// Reads every file once so that a required file that is missing, unreadable or not JSON fails
    /// before anything is sent; warns about a missing $REGISTRY_AUTH_FILE.
    /// </summary>
    public AuthFileLookup Validate()
    {
        foreach (var file in _files)
        {
            if (file.Required)
            {
                _ = Load(file);
            }
            else if (file.NamedBy is { } namedBy && !File.Exists(file.Path))
            {
                _logger.LogWarning("{Variable} names {File}, which does not exist: no credentials from it", namedBy, file.Path);
            }
        }
        return this;
    }

    /// <summary>Keys to try for a repository, most specific first: host/ns/repo, host/ns, host.</summary>
    public static IReadOnlyList<string> KeysFor(string registry, string repository)
    {
        var keys = new List<string>();
        var parts = repository.Split('/');
        for (int n = parts.Length; n >= 1; n--)
        {
            keys.Add(registry + "/" + string.Join('/', parts.Take(n)));
        }
        keys.Add(registry);
        return keys;
    }

    /// <summary>auth.json keys may be URLs ("https://index.docker.io/v1/"): keep host[/path] without scheme; index.docker.io is docker.io.</summary>
    public static string NormalizeKey(string key)
    {
        var k = key.Trim();
        bool hadScheme = false;
        foreach (var scheme in new[] { "https://", "http://" })
        {
            if (k.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
            {
                k = k[scheme.Length..];
                hadScheme = true;
            }
        }
        if (hadScheme)
        {
            int slash = k.IndexOf('/');
            if (slash >= 0)
            {
                k = k[..slash];
            }
        }
        k = k.TrimEnd('/');
        if (k == "index.docker.io" || k.StartsWith("index.docker.io/", StringComparison.Ordinal))
        {
            k = "docker.io" + k["index.docker.io".Length..];
        }
        return k;
    }

    public Credential? Get(string registry, string repository)
    {
        foreach (var file in _files)
        {
            if (!file.Required && !File.Exists(file.Path))
            {
                continue;
            }
            var found = FromFile(file, registry, repository);
            if (found is not null)
            {
                return found.Registered();
            }
        }
        return null;
    }

    public Credential? Refresh(string registry, string repository) => Get(registry, repository);

    /// <summary>Reads and parses one file (auth.json or legacy .dockercfg, by content).</summary>
    private static AuthConfigFile Load(AuthFileCandidate file)
    {
        var path = file.Path;
        try
        {
            return Parse(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new RegistryException($"auth file '{path}' is not valid JSON: {e.Message}");
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RegistryException($"auth file '{path}' does not exist");
        }
        catch (UnauthorizedAccessException)
        {
            throw new RegistryException($"auth file '{path}' is not readable (permission denied)");
        }
        catch (IOException e)
        {
            throw new RegistryException($"auth file '{path}' could not be read: {e.Message}");
        }
    }

    /// <summary>
    /// auth.json / config.json has "auths" (or "credHelpers"/"credsStore"); a legacy .dockercfg is
    /// the host map itself: no such key, and host entries that are objects with "auth" or "username".
    /// </summary>
    public static AuthConfigFile Parse(byte[] json)
    {
        using var doc = JsonDocument.Parse(json);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new JsonException("the top level is not an object");
        }
        bool modern = root.TryGetProperty("auths", out _) || root.TryGetProperty("credHelpers", out _) || root.TryGetProperty("credsStore", out _);
        bool legacy = !modern && root.EnumerateObject().Any(p => p.Value.ValueKind == JsonValueKind.Object
            && (p.Value.TryGetProperty("auth", out _) || p.Value.TryGetProperty("username", out _)));
        if (!legacy)
        {
            return root.Deserialize(RegistryJsonContext.Default.AuthConfigFile) ?? new AuthConfigFile();
        }
        var auths = new Dictionary<string, AuthConfigEntry>(StringComparer.Ordinal);
        foreach (var p in root.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Object))
        {
            auths[p.Name] = p.Value.Deserialize(RegistryJsonContext.Default.AuthConfigEntry) ?? new AuthConfigEntry();
        }
        return new AuthConfigFile { Auths = auths };
    }

    private Credential? FromFile(AuthFileCandidate file, string registry, string repository)
    {
        var path = file.Path;
        var config = Load(file);
        if (config.CredHelpers is { } helpers && helpers.TryGetValue(registry, out var helper) && !string.IsNullOrEmpty(helper))
        {
            var viaHelper = FromHelper(helper, registry, path);
            if (viaHelper is not null)
            {
                return viaHelper;
            }
        }
        if (config.Auths is { Count: > 0 } auths)
        {
            var normalized = new Dictionary<string, AuthConfigEntry>(StringComparer.Ordinal);
            foreach (var (k, v) in auths)
            {
                normalized.TryAdd(NormalizeKey(k), v);
            }
            foreach (var key in KeysFor(registry, repository))
            {
                if (normalized.TryGetValue(key, out var entry) && Decode(entry, path, key) is { } cred)
                {
                    _logger.LogDebug("credentials for {Key} from {File}", key, path);
                    return cred;
                }
            }
        }
        if (!string.IsNullOrEmpty(config.CredsStore))
        {
            return FromHelper(config.CredsStore, registry, path);
        }
        return null;
    }

    private static Credential? Decode(AuthConfigEntry entry, string path, string key)
    {
        string? user = entry.Username;
        string? pass = entry.Password;
        if (!string.IsNullOrEmpty(entry.Auth))
        {
            string decoded;
            try
            {
                decoded = System.Text.Encoding.UTF8.GetString(Convert.FromBase64String(entry.Auth));
            }
            catch (FormatException)
            {
                throw new RegistryException($"auth file '{path}': the auth value for '{key}' is not base64");
            }
            int colon = decoded.IndexOf(':');
            if (colon < 0)
            {
                throw new RegistryException($"auth file '{path}': the auth value for '{key}' is not USER:PASSWORD");
            }
            user = decoded[..colon];
            pass = decoded[(colon + 1)..];
        }
        if (!string.IsNullOrEmpty(entry.IdentityToken))
        {
            return new Credential(user ?? string.Empty, pass ?? string.Empty, entry.IdentityToken);
        }
        if (string.IsNullOrEmpty(user) && string.IsNullOrEmpty(pass))
        {
            return null;
        }
        return new Credential(user ?? string.Empty, pass ?? string.Empty);
    }

    private Credential? FromHelper(string helper, string registry, string path)
    {
        var output = _runHelper(helper, registry);
        if (output is null)
        {
            _logger.LogDebug("credential helper docker-credential-{Helper} (from {File}) gave nothing for {Registry}", helper, path, registry);
            return null;
        }
        CredentialHelperOutput? parsed;
        try
        {
            parsed = JsonSerializer.Deserialize(output, RegistryJsonContext.Default.CredentialHelperOutput);
        }
        catch (JsonException)
        {
            throw new RegistryException($"credential helper docker-credential-{helper} printed something that is not JSON");
        }
        if (parsed is null || string.IsNullOrEmpty(parsed.Secret))
        {
            return null;
        }
        return parsed.Username == "<token>"
            ? new Credential(string.Empty, string.Empty, parsed.Secret)
            : new Credential(parsed.Username ?? string.Empty, parsed.Secret);
    }

    /// <summary>Runs <c>docker-credential-NAME get</c> with the host on stdin; null if absent or "not found".</summary>
    public static string? RunCredentialHelper(string helper, string registry)
    {
        var program = "docker-credential-" + helper;
        var exe = (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, program)).FirstOrDefault(File.Exists);
        if (exe is null)
        {
            return null;
        }
        var psi = new ProcessStartInfo(exe, "get")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var p = Process.Start(psi) ?? throw new RegistryException($"could not start {program}");
        p.StandardInput.Write(registry);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill(entireProcessTree: true);
            throw new RegistryException($"{program} get did not answer in 30 s");
        }
        var output = stdout.GetAwaiter().GetResult();
        if (p.ExitCode != 0)
        {
            var err = (output + stderr.GetAwaiter().GetResult()).Trim();
            if (err.Contains("credentials not found", StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }
            throw new RegistryException($"{program} get failed (exit {p.ExitCode}): {err}");
        }
        return output;
    }
}

/// <summary>One auth file to search: <paramref name="Required"/> when the user named it (--authfile).</summary>
public sealed record AuthFileCandidate(string Path, bool Required, string? NamedBy = null);

/// <summary>No credentials (anonymous).</summary>
public sealed class AnonymousCredentialProvider : ICredentialProvider
{
    public Credential? Get(string registry, string repository) => null;

    public Credential? Refresh(string registry, string repository) => null;
}
