using ModelCar.Packing;
using System.Formats.Tar;
using System.Security.Cryptography;
using System.Text;

namespace ModelCar.TestSupport;

/// <summary>
/// Base images for the tests, written by hand (System.Formats.Tar + hand-made JSON, not our OCI
/// code): a busybox image from Debian's busybox-static (/bin/busybox plus symlinks sh, ln, sleep,
/// ls, mkdir, echo, [) and variants (no shell, with an ENTRYPOINT, multi-arch).
/// </summary>
public static class TestBases
{
    public static readonly string[] Applets = ["sh", "ln", "sleep", "ls", "mkdir", "echo", "["];

    public static string Sha(byte[] b) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(b));

    /// <summary>A layer tar: /bin/busybox (amd64 or arm64) and, if <paramref name="withShell"/>, applet symlinks.</summary>
    public static byte[] BusyboxLayer(bool withShell = true, string arch = "amd64")
    {
        var busybox = ModelCar.TestSupport.Busybox.PathFor(arch);
        using var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "bin/") { Mode = (UnixFileMode)0b111_101_101, ModificationTime = DateTimeOffset.UnixEpoch });
            var bb = new PaxTarEntry(TarEntryType.RegularFile, "bin/busybox") { Mode = (UnixFileMode)0b111_101_101, ModificationTime = DateTimeOffset.UnixEpoch };
            using var data = File.OpenRead(busybox);
            bb.DataStream = data;
            w.WriteEntry(bb);
            foreach (var applet in withShell ? Applets : Applets.Where(a => a != "sh"))
            {
                w.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, "bin/" + applet) { LinkName = "busybox", ModificationTime = DateTimeOffset.UnixEpoch });
            }
        }
        return ms.ToArray();
    }

    /// <summary>Writes an OCI layout with one image (uncompressed or gzip layer) under <paramref name="tag"/>.</summary>
    /// <param name="historyJson">The config's <c>history</c> array (JSON); "" leaves the key out (a base built without history).</param>
    public static string WriteLayout(string dir, string tag, byte[] layerTar, bool gzip = false, string? entrypointJson = null, string arch = "amd64",
        string historyJson = DefaultHistory)
    {
        var (manifest, _) = WriteImage(dir, layerTar, gzip, entrypointJson, arch, historyJson);
        WriteIndex(dir, $$$"""{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{{{Sha(manifest)}}}","size":{{{manifest.Length}}},"annotations":{"org.opencontainers.image.ref.name":"{{{tag}}}"}}""");
        return Sha(manifest);
    }

    /// <summary>A multi-arch layout: one image per architecture behind an image index tagged <paramref name="tag"/>.</summary>
    public static void WriteMultiArchLayout(string dir, string tag, params (string Arch, byte[] Layer)[] images)
    {
        var entries = new List<string>();
        foreach (var (arch, layer) in images)
        {
            var (manifest, _) = WriteImage(dir, layer, false, null, arch);
            entries.Add($$$"""{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{{{Sha(manifest)}}}","size":{{{manifest.Length}}},"platform":{"architecture":"{{{arch}}}","os":"linux"}}""");
        }
        var index = Encoding.UTF8.GetBytes($$$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{{string.Join(",", entries)}}}]}""");
        WriteBlob(dir, index);
        WriteIndex(dir, $$$"""{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{{{Sha(index)}}}","size":{{{index.Length}}},"annotations":{"org.opencontainers.image.ref.name":"{{{tag}}}"}}""");
    }

    /// <summary>
    /// The two-platform busybox base, built offline: an image index (linux/amd64, linux/arm64) over one
    /// busybox-static image per architecture, tagged <paramref name="tag"/>. Returns the index digest.
    /// </summary>
    public static string WriteTwoPlatformBusybox(string dir, string tag = "latest", bool arm64Shell = true)
    {
        WriteMultiArchLayout(dir, tag, ("amd64", BusyboxLayer()), ("arm64", BusyboxLayer(arm64Shell, "arm64")));
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "index.json")));
        return doc.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
    }

    public const string DefaultHistory = """[{"created_by":"test busybox"}]""";

    private static (byte[] Manifest, byte[] Config) WriteImage(string dir, byte[] layerTar, bool gzip, string? entrypointJson, string arch, string historyJson = DefaultHistory)
    {
        var blob = layerTar;
        if (gzip)
        {
            using var ms = new MemoryStream();
            using (var gz = new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            {
                gz.Write(layerTar);
            }
            blob = ms.ToArray();
        }
        WriteBlob(dir, blob);
        var entry = entrypointJson is null ? string.Empty : $",\"Entrypoint\":{entrypointJson}";
        var config = Encoding.UTF8.GetBytes($$$"""{"architecture":"{{{arch}}}","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]{{{entry}}},"Labels":{"base.label":"kept"}},"rootfs":{"type":"layers","diff_ids":["{{{Sha(layerTar)}}}"]}""" + (historyJson.Length == 0 ? "" : ",\"history\":" + historyJson) + "}");
        WriteBlob(dir, config);
        var layerType = gzip ? "application/vnd.oci.image.layer.v1.tar+gzip" : "application/vnd.oci.image.layer.v1.tar";
        var manifest = Encoding.UTF8.GetBytes($$$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{{{Sha(config)}}}","size":{{{config.Length}}}},"layers":[{"mediaType":"{{{layerType}}}","digest":"{{{Sha(blob)}}}","size":{{{blob.Length}}}}]}""");
        WriteBlob(dir, manifest);
        return (manifest, config);
    }

    private static void WriteBlob(string dir, byte[] content)
    {
        var path = Path.Combine(dir, "blobs", "sha256", Sha(content)["sha256:".Length..]);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, content);
    }

    private static void WriteIndex(string dir, string entries)
    {
        File.WriteAllText(Path.Combine(dir, "oci-layout"), """{"imageLayoutVersion":"1.0.0"}""");
        File.WriteAllText(Path.Combine(dir, "index.json"), $$$"""{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{{entries}}}]}""");
    }
}
