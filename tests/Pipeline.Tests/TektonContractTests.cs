using System.CommandLine;
using YamlDotNet.RepresentationModel;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The contract between tekton/ and the tools: every Task step's args, with sample values for the
/// params, go through the real command-line parser of the tool it runs; so does every step of every
/// shipped PipelineRun after Tekton's substitution (<see cref="TektonEngine"/>); every result a Task
/// declares is one the tool writes; the Pipeline and PipelineRuns wire only what exists.
/// </summary>
public class TektonContractTests
{
    private sealed record ToolSpec(Func<RootCommand> Create, IReadOnlyCollection<string> Results);

    private static readonly Dictionary<string, ToolSpec> Tools = new()
    {
        ["hf-fetch"] = new(HfFetch.HfFetchCommand.Create, HfFetch.HfFetchCommand.ResultNames),
        ["oci-pack"] = new(OciPack.OciPackCommand.Create, OciPack.OciPackCommand.ResultNames),
        ["registry-push"] = new(RegistryPush.RegistryPushCommand.Create, RegistryPush.RegistryPushCommand.ResultNames),
        ["mr-register"] = new(MrRegister.MrRegisterCommand.Create, MrRegister.MrRegisterCommand.ResultNames),
    };

    /// <summary>Values for params without a default, the shape a PipelineRun passes.</summary>
    private static readonly Dictionary<string, ParamValue> Samples = new()
    {
        ["repo-id"] = ParamValue.Of("mistralai/Mistral-Small-24B-Instruct-2501"),
        ["tag"] = ParamValue.Of("quantized-w4a16-2501"),
        ["dest"] = ParamValue.Of(["--dest", "docker://quay.io/modelcar/mistral-small-24b-instruct:quantized-w4a16-2501",
            "--dest", "docker://image-registry.openshift-image-registry.svc:5000/models/mistral-small-24b-instruct:quantized-w4a16-2501"]),
        ["output"] = ParamValue.Of(["--output", "docker://quay.io/modelcar/mistral-small-24b-instruct:quantized-w4a16-2501",
            "--output", "docker://image-registry.openshift-image-registry.svc:5000/models/mistral-small-24b-instruct:quantized-w4a16-2501"]),
        ["server"] = ParamValue.Of("https://modelregistry.rhoai-model-registries.svc:8443"),
        ["model-name"] = ParamValue.Of("Mistral-Small-24B-Instruct"),
        ["version-name"] = ParamValue.Of("quantized-w4a16-2501"),
        ["uri"] = ParamValue.Of("oci://quay.io/modelcar/mistral-small-24b-instruct@sha256:" + new string('a', 64)),
    };

    public static TheoryData<string> TaskFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    public static TheoryData<string> RunFiles()
    {
        var data = new TheoryData<string>();
        foreach (var f in Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml").Order())
        {
            data.Add(Path.GetFileName(f));
        }
        return data;
    }

    private static Dictionary<string, TaskDef> LoadTasks() =>
        Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml").Select(f => TektonEngine.LoadTask(TektonYaml.Load(f))).ToDictionary(t => t.Name);

    private static void AssertParses(string where, ResolvedStep step, TaskDef task)
    {
        Assert.Single(step.Command);
        var tool = Path.GetFileName(step.Command[0]);
        Assert.StartsWith("/usr/local/bin/", step.Command[0]);
        Assert.True(Tools.ContainsKey(tool), $"{where}: unknown tool {tool}");
        var args = step.Args.ToArray();
        var parse = Tools[tool].Create().Parse(args);
        Assert.True(parse.Errors.Count == 0,
            $"{where}: {tool} {string.Join(' ', args)}\n  " + string.Join("\n  ", parse.Errors.Select(e => e.Message)));
        Assert.Contains("--results-dir", args);
        Assert.Equal("/tekton/results", args[Array.IndexOf(args, "--results-dir") + 1]);
        foreach (var result in task.Results)
        {
            Assert.True(Tools[tool].Results.Contains(result), $"{where}: result '{result}' is not one {tool} writes ({string.Join(", ", Tools[tool].Results)})");
        }
    }

    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Task_args_parse_with_the_real_tool_parser(string file)
    {
        var task = TektonEngine.LoadTask(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)));
        Assert.NotEmpty(task.Steps);
        // one pipeline task running this Task with the samples for the params that have no default
        var given = task.Params.Where(p => p.Default is null).Select(p => (p.Name, (YamlNode)(Samples.TryGetValue(p.Name, out var s)
            ? s.IsArray ? new YamlSequenceNode(s.Array!.Select(a => new YamlScalarNode(a))) : new YamlScalarNode(s.String)
            : throw new Xunit.Sdk.XunitException($"{file}: param '{p.Name}' has no default and no sample value")))).ToList();
        var workspaces = task.Workspaces.ToDictionary(w => w.Name, w => w.Name);
        var pt = new PipelineTaskDef("t", task.Name, given, [], workspaces, 0);
        var run = new PipelineRunDef("p", new Dictionary<string, ParamValue>(), task.Workspaces.Select(w => new WorkspaceBinding(w.Name, "emptyDir", null, null)).ToList(), null);
        foreach (var step in TektonEngine.ResolveTaskRun(pt, new Dictionary<string, ParamValue>(), run, new Dictionary<string, TaskDef> { [task.Name] = task }, new Dictionary<string, IReadOnlyDictionary<string, string>>()))
        {
            AssertParses(file, step, task);
        }
    }

    /// <summary>
    /// Every step of a shipped PipelineRun, as Tekton resolves it, parses (results get sample
    /// values); the same run with pipelineRef modelcar-build-two-step too (what the README tells
    /// users who want the image on the PVC to do).
    /// </summary>
    [Theory]
    [MemberData(nameof(RunFiles))]
    public void Every_step_of_a_shipped_run_parses_after_tekton_substitution(string file)
    {
        var shipped = TektonEngine.LoadRun(TektonYaml.Load(Path.Combine(TektonYaml.Dir("runs"), file)));
        Assert.Equal(PipelineOfRun(file), shipped.PipelineRef);
        AssertRunParses(file, shipped);
        if (shipped.PipelineRef == "modelcar-build-direct")
        {
            return; // no model PVC to run the two-step pipeline on
        }
        AssertRunParses(file + " (two-step)", shipped with { PipelineRef = "modelcar-build-two-step" });
    }

    private static void AssertRunParses(string file, PipelineRunDef run)
    {
        var pipeline = TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), run.PipelineRef + ".yaml")));
        var tasks = LoadTasks();
        var pipelineParams = new Dictionary<string, ParamValue>();
        foreach (var p in pipeline.Params)
        {
            pipelineParams[p.Name] = run.Params.TryGetValue(p.Name, out var v) ? v : p.Default ?? throw new Xunit.Sdk.XunitException($"{file}: pipeline param '{p.Name}' not set");
        }
        foreach (var given in run.Params.Keys)
        {
            Assert.Contains(given, pipeline.Params.Select(p => p.Name));
        }
        var steps = new List<(string Task, ResolvedStep Step)>();
        var sampleResults = tasks.Values.SelectMany(t => t.Results).Distinct().ToDictionary(r => r, r => r switch
        {
            "commit" or "HF_COMMIT" => new string('c', 40),
            "IMAGE_DIGEST" => "sha256:" + new string('d', 64),
            _ => "sample-" + r,
        });
        var results = pipeline.Tasks.ToDictionary(t => t.Name, t => (IReadOnlyDictionary<string, string>)tasks[t.TaskRef].Results.ToDictionary(r => r, r => sampleResults[r]));
        foreach (var pt in pipeline.Tasks)
        {
            foreach (var step in TektonEngine.ResolveTaskRun(pt, pipelineParams, run, tasks, results))
            {
                AssertParses($"{file} task {pt.Name}", step, tasks[pt.TaskRef]);
                steps.Add((pt.TaskRef, step));
            }
        }
        // every pack runs for the pipeline's platforms (both by default) and no step is left without its image
        var packs = steps.Where(s => s.Step.Command[0] == "/usr/local/bin/oci-pack").ToList();
        Assert.NotEmpty(packs);
        foreach (var (_, step) in packs)
        {
            var args = step.Args.ToList();
            Assert.Equal(pipelineParams["platforms"].String, args[args.IndexOf("--platform") + 1]);
        }
    }

    [Fact]
    public void Pipeline_wires_only_declared_params_results_and_workspaces()
    {
        var tasks = Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml")
            .Select(TektonYaml.Load)
            .ToDictionary(t => t.Str("metadata", "name")!, t => t.Get("spec")!);
        foreach (var file in Directory.GetFiles(TektonYaml.Dir("pipelines"), "*.yaml"))
        {
            var pipeline = TektonYaml.Load(file);
            var spec = pipeline.Get("spec")!;
            var pipelineParams = TektonYaml.Params(spec).Select(p => p.Name).ToHashSet();
            var pipelineWorkspaces = TektonYaml.Names(spec, "workspaces").ToHashSet();
            var pipelineTasks = spec.Seq("tasks").ToDictionary(t => t.Str("name")!, t => t);
            HashSet<string> Upstream(string task)
            {
                var seen = new HashSet<string>();
                var todo = new Stack<string>(pipelineTasks[task].Seq("runAfter").Select(r => ((YamlScalarNode)r).Value!));
                while (todo.TryPop(out var t))
                {
                    if (seen.Add(t))
                    {
                        foreach (var r in pipelineTasks[t].Seq("runAfter"))
                        {
                            todo.Push(((YamlScalarNode)r).Value!);
                        }
                    }
                }
                return seen;
            }
            foreach (var (name, pt) in pipelineTasks)
            {
                var taskName = pt.Str("taskRef", "name")!;
                Assert.True(tasks.ContainsKey(taskName), $"{name}: no Task '{taskName}'");
                var taskSpec = tasks[taskName];
                var declared = TektonYaml.Params(taskSpec).ToDictionary(p => p.Name);
                var given = pt.Seq("params").ToDictionary(p => p.Str("name")!, p => p.Get("value")!);
                foreach (var g in given.Keys)
                {
                    Assert.True(declared.ContainsKey(g), $"{name}: Task '{taskName}' has no param '{g}'");
                }
                foreach (var d in declared.Values.Where(d => d.Default is null))
                {
                    Assert.True(given.ContainsKey(d.Name), $"{name}: required param '{d.Name}' of '{taskName}' is not set");
                }
                foreach (var value in given.Values.SelectMany(v => v is YamlSequenceNode s ? s.Children.Select(c => ((YamlScalarNode)c).Value ?? "") : [((YamlScalarNode)v).Value ?? ""]))
                {
                    foreach (System.Text.RegularExpressions.Match m in TektonYaml.Reference().Matches(value))
                    {
                        var parts = m.Groups[1].Value.Replace("[*]", "").Split('.');
                        if (parts[0] == "params")
                        {
                            Assert.Contains(parts[1], pipelineParams);
                        }
                        else if (parts[0] == "tasks")
                        {
                            Assert.True(pipelineTasks.ContainsKey(parts[1]), $"{name}: unknown task {parts[1]}");
                            var producer = tasks[pipelineTasks[parts[1]].Str("taskRef", "name")!];
                            Assert.Contains(parts[3], TektonYaml.Names(producer, "results"));
                            Assert.True(Upstream(name).Contains(parts[1]), $"{name} uses a result of {parts[1]} but does not run after it");
                        }
                    }
                }
                foreach (var ws in pt.Seq("workspaces"))
                {
                    Assert.Contains(ws.Str("workspace")!, pipelineWorkspaces);
                    Assert.Contains(ws.Str("name")!, TektonYaml.Names(taskSpec, "workspaces"));
                }
                foreach (var required in taskSpec.Seq("workspaces").Where(w => w.Str("optional") != "true"))
                {
                    Assert.Contains(required.Str("name")!, pt.Seq("workspaces").Select(w => w.Str("name")));
                }
            }
            if (!pipelineTasks.ContainsKey("download"))
            {
                // modelcar-build-direct: one task from the Hub to both registries, no model PVC, then register
                Assert.Equal("modelcar-build-direct", pipeline.Str("metadata", "name"));
                Assert.DoesNotContain("model", pipelineWorkspaces);
                var direct = Assert.Single(pipelineTasks.Values, t => t.Str("taskRef", "name") == "hf-pack-and-push");
                Assert.True(int.Parse(direct.Str("retries") ?? "0") >= 1, "hf-pack-and-push has no retries");
                Assert.Equal(2, direct.Seq("params").Single(p => p.Str("name") == "output").Seq("value").Count(v => ((YamlScalarNode)v).Value == "--output"));
                Assert.Contains(pipelineTasks.Values, t => t.Str("taskRef", "name") == "mr-register");
                // the layer record: an optional workspace (a small PVC keeps it across runs), HF_HOME in the task
                Assert.Equal("true", spec.Seq("workspaces").Single(w => w.Str("name") == "layer-record").Str("optional"));
                Assert.Contains(direct.Seq("workspaces"), w => w.Str("name") == "layer-record" && w.Str("workspace") == "layer-record");
                var hfPack = tasks["hf-pack-and-push"];
                Assert.Equal("true", hfPack.Seq("workspaces").Single(w => w.Str("name") == "layer-record").Str("optional"));
                Assert.Equal("$(workspaces.layer-record.path)", hfPack.Seq("steps").Single().Seq("env").Single(e => e.Str("name") == "HF_HOME").Str("value"));
                foreach (var runFile in Directory.GetFiles(TektonYaml.Dir("runs"), "modelcar-build-direct-*.yaml"))
                {
                    var run = TektonYaml.Load(runFile).Get("spec")!;
                    var given = run.Seq("params").Select(p => p.Str("name")!).ToHashSet();
                    foreach (var p in TektonYaml.Params(spec).Where(p => p.Default is null))
                    {
                        Assert.True(given.Contains(p.Name), $"{Path.GetFileName(runFile)}: pipeline param '{p.Name}' not set");
                    }
                    Assert.DoesNotContain(run.Seq("workspaces"), w => w.Str("name") == "model");
                    Assert.NotNull(run.Seq("workspaces").Single(w => w.Str("name") == "layer-record").Str("persistentVolumeClaim", "claimName"));
                    var exclude = run.Seq("params").Single(p => p.Str("name") == "exclude").Seq("value").Select(v => ((YamlScalarNode)v).Value).ToList();
                    Assert.Equal(["--exclude", "consolidated*.safetensors", "--exclude", "original/**"], exclude);
                }
                continue;
            }
            // a retry resumes on the same PVC: download and the upload retry
            Assert.True(int.Parse(pipelineTasks["download"].Str("retries") ?? "0") >= 1, "download has no retries");
            var upload = pipelineTasks.Values.Single(t => t.Str("taskRef", "name") is "registry-push" or "pack-and-push");
            Assert.True(int.Parse(upload.Str("retries") ?? "0") >= 1, $"{upload.Str("name")} has no retries");
            // one upload task with both registries (the model, or the layout, is read once)
            Assert.Single(pipelineTasks.Values, t => t.Str("taskRef", "name") is "registry-push" or "pack-and-push");

            foreach (var runFile in Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml"))
            {
                var runDoc = TektonYaml.Load(runFile);
                var run = runDoc.Get("spec")!;
                if (run.Str("pipelineRef", "name") != pipeline.Str("metadata", "name"))
                {
                    continue;
                }
                var given = run.Seq("params").Select(p => p.Str("name")!).ToHashSet();
                foreach (var p in TektonYaml.Params(spec).Where(p => p.Default is null))
                {
                    Assert.True(given.Contains(p.Name), $"{Path.GetFileName(runFile)}: pipeline param '{p.Name}' not set");
                }
                var requiredWorkspaces = spec.Seq("workspaces").Where(w => w.Str("optional") != "true").Select(w => w.Str("name")!);
                Assert.Equal(requiredWorkspaces.Order(), run.Seq("workspaces").Select(w => w.Str("name")!).Order());
                var version = run.Seq("params").Single(p => p.Str("name") == "version-name").Str("value")!;
                Assert.Matches(@"^(quantized-w4a16|full-fp16)-[0-9]{4}$", version);
                // the duplicate weights stay out: consolidated*.safetensors and original/**
                var exclude = run.Seq("params").Single(p => p.Str("name") == "exclude").Seq("value").Select(v => ((YamlScalarNode)v).Value).ToList();
                Assert.Equal(["--exclude", "consolidated*.safetensors", "--exclude", "original/**"], exclude);
                // a fresh PVC per run is deleted when the run ends; an existing claim is kept
                var model = run.Seq("workspaces").Single(w => w.Str("name") == "model");
                if (model.Get("volumeClaimTemplate") is not null)
                {
                    Assert.Equal("true", runDoc.Str("metadata", "annotations", "tekton.dev/auto-cleanup-pvc"));
                }
                else
                {
                    Assert.NotNull(model.Str("persistentVolumeClaim", "claimName"));
                    Assert.Null(runDoc.Str("metadata", "annotations", "tekton.dev/auto-cleanup-pvc"));
                }
            }
        }
        Assert.Contains(Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml").Select(TektonYaml.Load),
            r => r.Get("spec", "workspaces") is YamlSequenceNode ws && ws.Any(w => w.Str("persistentVolumeClaim", "claimName") is not null));
        // every shipped run runs the default pipeline, except the direct one its name announces
        Assert.All(Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml"), f => Assert.Equal(PipelineOfRun(Path.GetFileName(f)), TektonYaml.Load(f).Str("spec", "pipelineRef", "name")));
    }

    /// <summary>The Tasks that move model bytes (download, pack, push): the ones that can outlast 60 minutes.</summary>
    private static readonly HashSet<string> LongTasks = ["hf-fetch", "oci-pack", "pack-and-push", "hf-pack-and-push", "registry-push"];

    /// <summary>
    /// Issue 21 item 15. Before Tekton v1.11 a TaskRun of a PipelineRun gets taskRunSpecs' or its
    /// pipeline task's `timeout`, else 60 minutes — per try, whatever `timeouts.tasks` says. So every
    /// download/pack/push pipeline task of every pipeline sets a `timeout` over 60 minutes, and every
    /// shipped run (on its pipeline, and on the two-step one the README offers with the same run) has
    /// `timeouts` that hold it: each try's timeout ≤ timeouts.tasks, one full try of every long task on
    /// the longest runAfter chain ≤ timeouts.tasks ≤ timeouts.pipeline.
    /// </summary>
    [Fact]
    public void Long_tasks_set_their_own_timeout_and_the_runs_timeouts_hold_it()
    {
        var pipelines = Directory.GetFiles(TektonYaml.Dir("pipelines"), "*.yaml").Select(f => TektonEngine.LoadPipeline(TektonYaml.Load(f))).ToDictionary(p => p.Name);
        foreach (var pipeline in pipelines.Values)
        {
            var long_ = pipeline.Tasks.Where(t => LongTasks.Contains(t.TaskRef)).ToList();
            Assert.NotEmpty(long_);
            foreach (var pt in long_)
            {
                Assert.True(pt.Timeout > TektonEngine.DefaultTimeout,
                    $"{pipeline.Name} task {pt.Name}: timeout {pt.Timeout?.ToString() ?? "unset"}: before Tekton v1.11 each try then gets {TektonEngine.DefaultTimeout}");
            }
        }
        foreach (var file in Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml"))
        {
            var run = TektonEngine.LoadRun(TektonYaml.Load(file));
            var name = Path.GetFileName(file);
            Assert.True(run.Timeouts is { Pipeline: not null, Tasks: not null }, $"{name}: no timeouts.pipeline/tasks");
            var tasksBudget = run.Timeouts!.Tasks!.Value;
            Assert.True(tasksBudget <= run.Timeouts.Pipeline!.Value, $"{name}: timeouts.tasks over timeouts.pipeline");
            var targets = run.PipelineRef == "modelcar-build-direct" ? [run.PipelineRef] : new[] { run.PipelineRef, "modelcar-build-two-step" };
            foreach (var target in targets)
            {
                var pipeline = pipelines[target];
                var byName = pipeline.Tasks.ToDictionary(t => t.Name);
                foreach (var pt in pipeline.Tasks.Where(t => LongTasks.Contains(t.TaskRef)))
                {
                    var tryTimeout = TektonEngine.TaskRunTimeout(pt, run);
                    Assert.Equal(pt.Timeout, tryTimeout);
                    Assert.Equal(tryTimeout, TektonEngine.TaskRunTimeout(pt, run, tekton111OrLater: true));
                    Assert.True(tryTimeout <= tasksBudget, $"{name} on {target}: {pt.Name}'s {tryTimeout} per try is over timeouts.tasks {tasksBudget}");
                }
                // one full try of each long task along the longest chain
                var memo = new Dictionary<string, TimeSpan>();
                TimeSpan Chain(PipelineTaskDef pt) => memo.TryGetValue(pt.Name, out var c) ? c : memo[pt.Name] =
                    (LongTasks.Contains(pt.TaskRef) ? TektonEngine.TaskRunTimeout(pt, run) : TimeSpan.Zero)
                    + pt.RunAfter.Select(r => Chain(byName[r])).DefaultIfEmpty(TimeSpan.Zero).Max();
                var longest = pipeline.Tasks.Max(Chain);
                Assert.True(longest <= tasksBudget, $"{name} on {target}: one full try of each long task takes up to {longest}, over timeouts.tasks {tasksBudget}");
            }
        }
    }

    /// <summary>The pipeline a shipped run file runs: modelcar-build-direct-*.yaml the direct one, every other the default.</summary>
    private static string PipelineOfRun(string file) =>
        file.StartsWith("modelcar-build-direct-", StringComparison.Ordinal) ? "modelcar-build-direct" : "modelcar-build";

    /// <summary>
    /// The default pipeline is download → pack-and-push → register: one oci-pack with a docker://
    /// output per registry (quay through the quay-auth secret, the internal registry with the pod's
    /// SA token), nothing written to the PVC but the model; the image digest and URL come from its
    /// results, and register runs after it with that digest. The two-step tasks stay, in
    /// modelcar-build-two-step.
    /// </summary>
    [Fact]
    public void Default_pipeline_packs_and_pushes_in_one_pass_and_registers_its_digest()
    {
        var pipeline = TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), "modelcar-build.yaml")));
        var tasks = LoadTasks();
        Assert.Equal(["download", "pack-and-push", "register"], pipeline.Tasks.Select(t => t.Name));
        Assert.Equal(["hf-fetch", "pack-and-push", "mr-register"], pipeline.Tasks.Select(t => t.TaskRef));
        Assert.Equal(["download"], pipeline.Tasks[1].RunAfter);
        Assert.Equal(["pack-and-push"], pipeline.Tasks[2].RunAfter);
        Assert.DoesNotContain(pipeline.Params, p => p.Name == "image-subdir");
        var results = pipeline.Results.ToDictionary(r => r.Name, r => r.Value);
        Assert.Equal("$(tasks.pack-and-push.results.IMAGE_DIGEST)", results["IMAGE_DIGEST"]);
        Assert.Equal("$(tasks.pack-and-push.results.IMAGE_URL)", results["IMAGE_URL"]);
        Assert.Equal("linux/amd64,linux/arm64", pipeline.Params.Single(p => p.Name == "platforms").Default?.String);

        var run = TektonEngine.LoadRun(TektonYaml.Load(Path.Combine(TektonYaml.Dir("runs"), "modelcar-build-quantized.yaml")));
        var pipelineParams = pipeline.Params.ToDictionary(p => p.Name, p => run.Params.TryGetValue(p.Name, out var v) ? v : p.Default!);
        var digest = "sha256:" + new string('d', 64);
        var sample = new Dictionary<string, IReadOnlyDictionary<string, string>>
        {
            ["download"] = new Dictionary<string, string> { ["commit"] = new string('c', 40) },
            ["pack-and-push"] = new Dictionary<string, string>
            {
                ["IMAGE_DIGEST"] = digest, ["IMAGE_URL"] = "quay.io/x@" + digest, ["IMAGE_SIZE"] = "123",
                // unsigned (no signing-secrets): the signing results are written empty
                ["SIGNATURE_DIGESTS"] = "", ["ATTESTATION_DIGESTS"] = "", ["MODEL_FILES_DIGEST"] = "",
            },
        };
        var step = Assert.Single(TektonEngine.ResolveTaskRun(pipeline.Tasks[1], pipelineParams, run, tasks, sample));
        var args = step.Args.ToList();
        var outputs = args.Select((a, i) => (a, i)).Where(x => x.a == "--output").Select(x => args[x.i + 1]).ToList();
        Assert.Equal([$"docker://quay.io/modelcar/mistral-small-24b-instruct:quantized-w4a16-2501",
            $"docker://image-registry.openshift-image-registry.svc:5000/models/mistral-small-24b-instruct:quantized-w4a16-2501"], outputs);
        Assert.DoesNotContain(args, a => a.StartsWith("oci:", StringComparison.Ordinal) || a.StartsWith("oci-archive:", StringComparison.Ordinal));
        Assert.Equal("image-registry.openshift-image-registry.svc:5000=serviceaccount:/var/run/secrets/kubernetes.io/serviceaccount/token", args[args.IndexOf("--login") + 1]);
        Assert.Equal("/workspace/registry-auth/.dockerconfigjson", args[args.IndexOf("--authfile") + 1]);
        Assert.Equal("linux/amd64,linux/arm64", args[args.IndexOf("--platform") + 1]);
        Assert.Equal("20000000000", args[args.IndexOf("--max-blob-size") + 1]);
        Assert.Equal("/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt", args[args.IndexOf("--ca-file") + 1]);
        Assert.Equal(["--exclude", "consolidated*.safetensors", "--exclude", "original/**"],
            args.Select((a, i) => (a, i)).Where(x => x.a == "--exclude").SelectMany(x => new[] { x.a, args[x.i + 1] }));
        // the model workspace is the only volume with data: no image-subdir, nothing but the model goes to the PVC
        Assert.Contains(step.Mounts, m => m.Binding.Name == "model" && !m.Decl.ReadOnly);

        var register = Assert.Single(TektonEngine.ResolveTaskRun(pipeline.Tasks[2], pipelineParams, run, tasks, sample)).Args.ToList();
        Assert.Equal($"oci://quay.io/modelcar/mistral-small-24b-instruct@{digest}", register[register.IndexOf("--uri") + 1]);
        Assert.Contains($"image_digest={digest}", register);
        Assert.Contains($"internal_image=image-registry.openshift-image-registry.svc:5000/models/mistral-small-24b-instruct@{digest}", register);
        Assert.Contains("image_size:int=123", register);
        Assert.Contains("platforms=linux/amd64,linux/arm64", register);
        // the run binds no signing-secrets: the pack task signs nothing, and register records nothing for signing
        Assert.Contains("--sign=false", args);
        Assert.Equal("", register[register.IndexOf("--model-files-digest") + 1]);
        Assert.Equal("", register[register.IndexOf("--signature-digests") + 1]);

        // the two-step tasks stay, wired in modelcar-build-two-step
        var twoStep = TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), "modelcar-build-two-step.yaml")));
        Assert.Equal(["hf-fetch", "oci-pack", "registry-push", "mr-register"], twoStep.Tasks.Select(t => t.TaskRef));
    }

    /// <summary>
    /// Both pack tasks take `platforms` (default linux/amd64,linux/arm64) and pass it to
    /// --platform; their base default is ubi-micro, which Red Hat publishes as an image index for
    /// amd64, arm64, ppc64le and s390x; a pipeline passes its own `platforms` down.
    /// </summary>
    [Theory]
    [InlineData("oci-pack.yaml")]
    [InlineData("pack-and-push.yaml")]
    [InlineData("hf-pack-and-push.yaml")]
    public void Pack_tasks_take_platforms_defaulting_to_amd64_and_arm64(string file)
    {
        var task = TektonEngine.LoadTask(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)));
        Assert.Equal("linux/amd64,linux/arm64", task.Params.Single(p => p.Name == "platforms").Default?.String);
        Assert.Equal("docker://registry.access.redhat.com/ubi9/ubi-micro", task.Params.Single(p => p.Name == "base").Default?.String);
        var args = Assert.Single(task.Steps).Args.ToList();
        Assert.Equal("$(params.platforms)", args[args.IndexOf("--platform") + 1]);
        foreach (var pipelineFile in Directory.GetFiles(TektonYaml.Dir("pipelines"), "*.yaml"))
        {
            var pipeline = TektonEngine.LoadPipeline(TektonYaml.Load(pipelineFile));
            foreach (var pt in pipeline.Tasks.Where(t => t.TaskRef == task.Name))
            {
                Assert.Contains(pt.Params, p => p.Name == "platforms" && p.Value is YamlScalarNode { Value: "$(params.platforms)" });
            }
        }
        // every shipped run runs the default pipeline, except the direct one its name announces
        Assert.All(Directory.GetFiles(TektonYaml.Dir("runs"), "*.yaml"), f => Assert.Equal(PipelineOfRun(Path.GetFileName(f)), TektonYaml.Load(f).Str("spec", "pipelineRef", "name")));
    }

    /// <summary>The tools' timing options a cluster admin may need to change, and the Task param that carries each.</summary>
    private static readonly (string Flag, string Param, bool Array, string? Default)[] TimingOptions =
    [
        ("--stall-timeout", "stall-timeout", false, ModelCar.Common.Http.HttpSettings.DefaultStallTimeout.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("--max-retry-wait", "max-retry-wait", false, ModelCar.Common.Http.HttpSettings.DefaultMaxRetryWait.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        // no default in the tool (wait as long as the other run takes): an optional flag, as include/exclude are
        ("--lock-timeout", "lock-timeout", true, null),
    ];

    /// <summary>
    /// Every Task exposes --stall-timeout, --max-retry-wait and --lock-timeout as params exactly where its
    /// tool has the option (and only there), with the tool's default, passed right after the flag; a value
    /// other than the default reaches the tool's parser as that value.
    /// </summary>
    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Tasks_expose_the_tools_timing_options_as_params_in_sync_with_the_flags(string file)
    {
        var task = TektonEngine.LoadTask(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)));
        var step = Assert.Single(task.Steps);
        var root = Tools[Path.GetFileName(step.Command[0])].Create();
        var args = step.Args.ToList();
        // a tool with subcommands (mr-register register|lookup): the options are the subcommand's
        Command options = root.Subcommands.FirstOrDefault(c => args.Count > 0 && c.Name == args[0]) ?? root;
        var given = new List<(string, YamlNode)>();
        foreach (var (flag, param, array, defaultValue) in TimingOptions)
        {
            bool toolHas = options.Options.Any(o => o.Name == flag);
            var decl = task.Params.SingleOrDefault(p => p.Name == param);
            Assert.True(toolHas == (decl is not null), $"{file}: {(toolHas ? $"the tool has {flag} but the Task has no param '{param}'" : $"param '{param}' but the tool has no {flag}")}");
            if (decl is null)
            {
                continue;
            }
            if (array)
            {
                Assert.True(decl.Default is { IsArray: true, Array.Count: 0 }, $"{file}: '{param}' should be an array defaulting to []");
                Assert.Contains($"$(params.{param}[*])", args);
                given.Add((param, new YamlSequenceNode(new YamlScalarNode(flag), new YamlScalarNode("3"))));
            }
            else
            {
                Assert.Equal(defaultValue, decl.Default?.String);
                Assert.Equal($"$(params.{param})", args[args.IndexOf(flag) + 1]);
                given.Add((param, new YamlScalarNode("3")));
            }
        }
        if (given.Count == 0)
        {
            return;
        }
        // the same Task with each of these params set to 3 (seconds): the tool parses 3 for each
        given.AddRange(task.Params.Where(p => p.Default is null).Select(p => (p.Name, Samples[p.Name] is { IsArray: true } s
            ? (YamlNode)new YamlSequenceNode(s.Array!.Select(a => new YamlScalarNode(a))) : new YamlScalarNode(Samples[p.Name].String))));
        var pt = new PipelineTaskDef("t", task.Name, given, [], task.Workspaces.ToDictionary(w => w.Name, w => w.Name), 0);
        var run = new PipelineRunDef("p", new Dictionary<string, ParamValue>(), task.Workspaces.Select(w => new WorkspaceBinding(w.Name, "emptyDir", null, null)).ToList(), null);
        var resolved = Assert.Single(TektonEngine.ResolveTaskRun(pt, new Dictionary<string, ParamValue>(), run, new Dictionary<string, TaskDef> { [task.Name] = task }, new Dictionary<string, IReadOnlyDictionary<string, string>>()));
        var parse = root.Parse(resolved.Args.ToArray());
        Assert.Empty(parse.Errors);
        foreach (var option in options.Options.Where(o => TimingOptions.Any(t => t.Flag == o.Name)))
        {
            object? value = option switch
            {
                Option<int> i => parse.GetValue(i),
                Option<int?> n => parse.GetValue(n),
                _ => throw new Xunit.Sdk.XunitException($"{file}: {option.Name} is a {option.GetType().Name}"),
            };
            Assert.True(Equals(value, 3), $"{file}: {option.Name} parsed as {value}");
        }
    }

    /// <summary>Every Task declares IMAGE_URL next to IMAGE_DIGEST (Tekton Chains reads the pair).</summary>
    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Tasks_that_produce_an_image_declare_IMAGE_URL_and_IMAGE_DIGEST(string file)
    {
        var results = TektonYaml.Names(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)).Get("spec")!, "results");
        Assert.Equal(results.Contains("IMAGE_DIGEST"), results.Contains("IMAGE_URL"));
    }

    /// <summary>Every Task that talks to a server has ca-file (default: the service CA) and tls-verify params, and passes both.</summary>
    [Theory]
    [MemberData(nameof(TaskFiles))]
    public void Tasks_that_talk_to_a_server_take_ca_file_defaulting_to_the_service_CA_and_tls_verify(string file)
    {
        var task = TektonEngine.LoadTask(TektonYaml.Load(Path.Combine(TektonYaml.Dir("tasks"), file)));
        var ca = Assert.Single(task.Params, p => p.Name == "ca-file");
        Assert.Equal("/var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt", ca.Default?.String);
        Assert.Equal("true", Assert.Single(task.Params, p => p.Name == "tls-verify").Default?.String);
        foreach (var step in task.Steps)
        {
            Assert.Equal("$(params.ca-file)", step.Args[step.Args.ToList().IndexOf("--ca-file") + 1]);
            Assert.Contains("--tls-verify=$(params.tls-verify)", step.Args);
        }
    }

    /// <summary>The registry-push README's "what the Tekton push task does" is the push step of the quantized run on modelcar-build-two-step, arg for arg.</summary>
    [Fact]
    public void Registry_push_readme_example_is_what_the_push_task_runs()
    {
        var readme = File.ReadAllLines(Path.Combine(TestSupport.RepoPaths.Root, "tools", "registry-push", "README.md"));
        int at = Array.FindIndex(readme, l => l.StartsWith("# what the Tekton push task", StringComparison.Ordinal));
        Assert.True(at >= 0, "the example is missing");
        var lines = readme.Skip(at + 1).SkipWhile(l => l.StartsWith('#')).TakeWhile(l => l.Trim().Length > 0 && !l.StartsWith("```", StringComparison.Ordinal));
        var words = string.Join(" ", lines.Select(l => l.TrimEnd('\\', ' '))).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("registry-push", words[0]);

        var run = TektonEngine.LoadRun(TektonYaml.Load(Path.Combine(TektonYaml.Dir("runs"), "modelcar-build-quantized.yaml")));
        var pipeline = TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), "modelcar-build-two-step.yaml")));
        var pipelineParams = pipeline.Params.ToDictionary(p => p.Name, p => run.Params.TryGetValue(p.Name, out var v) ? v : p.Default!);
        var results = pipeline.Tasks.ToDictionary(t => t.Name, t => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>());
        var step = Assert.Single(TektonEngine.ResolveTaskRun(pipeline.Tasks.Single(t => t.Name == "push"), pipelineParams, run, LoadTasks(), results));
        Assert.Equal(step.Args, words[1..]);
    }
}
