-- The output window: one scratch buffer, a section per run, stderr highlighted.
local M = {}

local namespace = vim.api.nvim_create_namespace('forgeai_output')
local state = { buf = nil, win = nil, style = 'split', pending = {} }

local function ensure_buffer()
  if state.buf and vim.api.nvim_buf_is_valid(state.buf) then
    return state.buf
  end
  state.buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(state.buf, 'ForgeAI output')
  vim.api.nvim_buf_set_option(state.buf, 'buftype', 'nofile')
  vim.api.nvim_buf_set_option(state.buf, 'bufhidden', 'hide')
  vim.api.nvim_buf_set_option(state.buf, 'swapfile', false)
  vim.api.nvim_buf_set_option(state.buf, 'filetype', 'forgeai-output')
  return state.buf
end

local function show()
  local buf = ensure_buffer()
  if state.win and vim.api.nvim_win_is_valid(state.win) then
    return
  end
  local current = vim.api.nvim_get_current_win()
  if state.style == 'float' then
    local width = math.floor(vim.o.columns * 0.7)
    local height = math.floor(vim.o.lines * 0.4)
    state.win = vim.api.nvim_open_win(buf, false, {
      relative = 'editor', width = width, height = height, style = 'minimal',
      border = 'rounded', row = vim.o.lines - height - 4, col = math.floor((vim.o.columns - width) / 2),
    })
  else
    vim.cmd('botright 12split')
    state.win = vim.api.nvim_get_current_win()
    vim.api.nvim_win_set_buf(state.win, buf)
    vim.api.nvim_set_current_win(current)
  end
end

function M.configure(style)
  state.style = style or 'split'
end

function M.buffer()
  return ensure_buffer()
end

local function append(lines, highlight)
  local buf = ensure_buffer()
  local count = vim.api.nvim_buf_line_count(buf)
  local first_empty = count == 1 and vim.api.nvim_buf_get_lines(buf, 0, 1, false)[1] == ''
  local start = first_empty and 0 or count
  vim.api.nvim_buf_set_lines(buf, start, first_empty and 1 or count, false, lines)
  if highlight then
    for i = start, start + #lines - 1 do
      vim.api.nvim_buf_add_highlight(buf, namespace, highlight, i, 0, -1)
    end
  end
  if state.win and vim.api.nvim_win_is_valid(state.win) then
    vim.api.nvim_win_set_cursor(state.win, { vim.api.nvim_buf_line_count(buf), 0 })
  end
end

-- 'environment: /p/.venv (Python 3.11.7; nearest .venv)', or nil without one.
function M.environment_line(environment)
  if type(environment) ~= 'table' then
    return nil
  end
  local what = 'node_modules'
  if environment.kind ~= 'node-modules' then
    local version = environment.version
    what = (type(version) == 'string') and ('Python ' .. version) or 'Python'
  end
  local line = ('environment: %s (%s; %s'):format(environment.path, what, environment.foundBy)
  local skipped = environment.notMounted
  if type(skipped) == 'table' and #skipped > 0 then
    line = line .. '; not mounted: ' .. table.concat(skipped, ', ')
  end
  return line .. ')'
end

function M.start_section(run_id, uri, environment)
  show()
  append({ ('── ForgeAI run %s: %s ──'):format(run_id, vim.uri_to_fname(uri)) }, 'Title')
  local line = M.environment_line(environment)
  if line then
    append({ line }, 'Comment')
  end
  state.pending[run_id] = { stdout = '', stderr = '' }
end

-- Text arrives in arbitrary pieces: only complete lines are written until the run ends.
function M.add(run_id, stream, text)
  local pending = state.pending[run_id]
  if not pending then
    return
  end
  local combined = pending[stream] .. text
  local lines = vim.split(combined, '\n', { plain = true })
  pending[stream] = table.remove(lines)
  if #lines > 0 then
    append(lines, stream == 'stderr' and 'ErrorMsg' or nil)
  end
end

function M.finish(run_id, summary)
  local pending = state.pending[run_id] or { stdout = '', stderr = '' }
  for _, stream in ipairs({ 'stdout', 'stderr' }) do
    if pending[stream] ~= '' then
      append({ pending[stream] }, stream == 'stderr' and 'ErrorMsg' or nil)
    end
  end
  state.pending[run_id] = nil
  -- Files the program wrote to its output directory, saved by the server: announced with
  -- their paths (open them from there).
  if type(summary.artifacts) == 'table' then
    for _, artifact in ipairs(summary.artifacts) do
      append({ ('file out: %s (%s, %d bytes) → %s'):format(artifact.name, artifact.mime,
        artifact.size, artifact.path) }, 'Directory')
    end
  end
  if type(summary.artifactsSkipped) == 'table' then
    for _, reason in ipairs(summary.artifactsSkipped) do
      append({ 'not copied: ' .. reason }, 'WarningMsg')
    end
  end
  local status
  if summary.cancelled then
    status = 'stopped'
  elseif summary.limit and summary.limit ~= vim.NIL then
    status = ('stopped by the %s limit'):format(summary.limit)
  elseif summary.exitCode ~= nil and summary.exitCode ~= vim.NIL then
    status = ('exit %d'):format(summary.exitCode)
  else
    status = ('killed by signal %s'):format(tostring(summary.signal))
  end
  append({ ('── %s in %.0f ms ──'):format(status, summary.durationMs or 0) },
    summary.exitCode == 0 and 'Comment' or 'WarningMsg')
end

function M.lines()
  return vim.api.nvim_buf_get_lines(ensure_buffer(), 0, -1, false)
end

return M
