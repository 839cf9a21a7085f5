-- Argo CD health check for acrpool.dev (Registry, AgentPool, Task, TaskRun,
-- PipelineAgentPool).
--
-- Install it in argocd-cm under resource.customizations.health.acrpool.dev_<Kind>
-- for each of the five kinds (docs/gitops.md). Argo CD sets `obj` to the
-- live object and reads the returned {status, message}.
--
-- The operator writes kstatus conditions (Ready, Reconciling, Stalled) and
-- status.observedGeneration; this reads them the way kstatus (Flux) does:
--   1. no status yet, or status.observedGeneration behind metadata.generation:
--      Progressing (the operator has not looked at this spec yet; a Stalled
--      condition from an older spec says nothing about this one);
--   2. TaskRun with a runStatus: Succeeded is Healthy; Failed, Error, Timeout
--      and Canceled are Degraded; Queued, Started and Running are Progressing;
--   3. Stalled=True: Degraded, with its message (it needs a human);
--   4. Ready=True: Healthy;
--   5. anything else (Reconciling=True, Ready=False while waiting): Progressing.
--
-- Plain Lua 5.1, as Argo CD's interpreter (gopher-lua) runs it.

local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  local msg = c.message
  if msg == nil or msg == "" then
    msg = fallback
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason .. ": " .. msg
  end
  return msg
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

if obj.kind == "TaskRun" and status.runStatus ~= nil then
  local run = "Run"
  if status.runId ~= nil then
    run = "Run " .. status.runId
  end
  local rs = status.runStatus
  if rs == "Succeeded" then
    hs.status = "Healthy"
    hs.message = run .. " succeeded"
    return hs
  end
  if rs == "Failed" or rs == "Error" or rs == "Timeout" or rs == "Canceled" then
    hs.status = "Degraded"
    local detail = status.errorMessage
    if detail == nil or detail == "" then
      local stalled = condition(status, "Stalled")
      if stalled ~= nil and stalled.message ~= nil and stalled.message ~= "" then
        detail = stalled.message
      end
    end
    hs.message = run .. " " .. rs
    if detail ~= nil and detail ~= "" then
      hs.message = hs.message .. ": " .. detail
    end
    return hs
  end
  if rs == "Queued" or rs == "Started" or rs == "Running" then
    hs.status = "Progressing"
    hs.message = run .. " is " .. rs
    return hs
  end
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

local reconciling = condition(status, "Reconciling")
hs.status = "Progressing"
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling, "Reconciling")
elseif ready ~= nil then
  hs.message = describe(ready, "Not ready")
else
  hs.message = "Waiting for the operator to report conditions"
end
return hs
