-- For the screenshot: run a selection and the lens, then leave the screen as a user sees it
-- and touch $FORGEAI_SCREEN_READY. The test captures the terminal and quits Neovim itself.
local forgeai = require('forgeai')
local finished = 0
forgeai.setup({
  cmd = vim.fn.json_decode(os.getenv('FORGEAI_LS_CMD')),
  on_finished = function() finished = finished + 1 end,
})
vim.opt.signcolumn = 'yes'
vim.cmd('edit ' .. os.getenv('FORGEAI_E2E_FILE'))
local bufnr = vim.api.nvim_get_current_buf()
vim.wait(30000, function()
  local c = forgeai.client_id and vim.lsp.get_client_by_id(forgeai.client_id)
  return c ~= nil and c.server_capabilities ~= nil
end, 50)
vim.wait(20000, function()
  vim.lsp.codelens.refresh()
  vim.wait(300, function() return #(vim.lsp.codelens.get(bufnr) or {}) > 0 end, 20)
  return #(vim.lsp.codelens.get(bufnr) or {}) > 0
end, 100)
-- The selection first, then the whole file, so its diagnostic is what stays on screen.
vim.cmd('1,2ForgeAIRunSelection')
vim.wait(60000, function() return finished >= 1 end, 50)
vim.api.nvim_win_set_cursor(0, { 1, 0 })
vim.lsp.codelens.run()
vim.wait(60000, function() return finished >= 2 end, 50)
vim.wait(500)
vim.cmd('redraw!')
local ready = io.open(os.getenv('FORGEAI_SCREEN_READY'), 'w')
ready:write('ready')
ready:close()
