// The trial runner: reads the bootstrap object the server rendered into the page.
const bootstrap = JSON.parse(document.getElementById("bootstrap").textContent);
document.title = bootstrap.title;
