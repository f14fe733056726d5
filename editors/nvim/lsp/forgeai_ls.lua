-- ForgeAI language server: run code in a sandbox from Neovim (0.11+: vim.lsp.config).
-- Code lenses "Run in sandbox", streamed output and diagnostics need the forgeai plugin's
-- handlers too: require('forgeai').setup() adds them and works from Neovim 0.7 on.
return {
  cmd = { 'forgeai-ls' },
  filetypes = {
    'python', 'javascript', 'sh', 'bash', 'perl', 'c', 'cpp', 'rust', 'java',
    'typescript', 'ruby', 'go', 'lua', 'php', 'markdown',
  },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml' },
  init_options = { forgeai = {} },
}
